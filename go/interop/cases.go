// Package interop holds the Go side of the interop harness: the client cases
// of implementations/CONTRACT.md, one exported function each, and the
// Greeter and TestService servers. cmd/client and cmd/server are thin
// command-line wrappers around it.
package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
	"polyglot-grpc-interop/go/gen/helloworld"
)

// RPCTimeout is the deadline of every RPC of a case unless the case says
// otherwise: long enough for a slow CI machine, short enough that a server
// that never answers costs seconds, not the whole run.
const RPCTimeout = 10 * time.Second

// Clients are the stubs, all on one channel, that the client cases call.
type Clients struct {
	Greeter       helloworld.GreeterClient
	Test          testingpb.TestServiceClient
	Unimplemented testingpb.UnimplementedServiceClient
}

// NewClients makes the stubs of every service the cases call on cc.
func NewClients(cc grpc.ClientConnInterface) *Clients {
	return &Clients{
		Greeter:       helloworld.NewGreeterClient(cc),
		Test:          testingpb.NewTestServiceClient(cc),
		Unimplemented: testingpb.NewUnimplementedServiceClient(cc),
	}
}

// DialOptions are the options every channel that runs the cases needs:
// the stats handler that lets the compression cases see which messages
// were compressed. Credentials are left to the caller.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStatsHandler(compressionStats{server: false})}
}

// InsecureDialOptions are DialOptions plus plaintext credentials.
func InsecureDialOptions() []grpc.DialOption {
	return append(DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Case is one client case: its contract name and the function that runs it.
// Run returns nil when every check passed, otherwise an error whose text
// joins every failed check with "; ".
type Case struct {
	Name string
	Run  func(ctx context.Context, c *Clients) error
}

// Cases lists every case in the order of the contract's tables; "all" runs
// them in this order.
var Cases = []Case{
	{"greeter_unary", DoGreeterUnary},
	{"greeter_server_streaming", DoGreeterServerStreaming},
	{"greeter_client_streaming", DoGreeterClientStreaming},
	{"greeter_bidi_streaming", DoGreeterBidiStreaming},
	{"empty_unary", DoEmptyUnary},
	{"large_unary", DoLargeUnary},
	{"client_streaming", DoClientStreaming},
	{"server_streaming", DoServerStreaming},
	{"ping_pong", DoPingPong},
	{"empty_stream", DoEmptyStream},
	{"custom_metadata", DoCustomMetadata},
	{"status_code_and_message", DoStatusCodeAndMessage},
	{"special_status_message", DoSpecialStatusMessage},
	{"unimplemented_method", DoUnimplementedMethod},
	{"unimplemented_service", DoUnimplementedService},
	{"cancel_after_begin", DoCancelAfterBegin},
	{"cancel_after_first_response", DoCancelAfterFirstResponse},
	{"timeout_on_sleeping_server", DoTimeoutOnSleepingServer},
	{"client_compressed_unary", DoClientCompressedUnary},
	{"server_compressed_unary", DoServerCompressedUnary},
	{"client_compressed_streaming", DoClientCompressedStreaming},
	{"server_compressed_streaming", DoServerCompressedStreaming},
}

// UnsupportedCases maps each case this client cannot express to the reason.
// implementations/go.toml lists the same cases with the same reasons.
// It is empty: grpc-go 1.85 can express every case (see
// DoClientCompressedStreaming for the one that needed care).
var UnsupportedCases = map[string]string{}

// ParseCases turns a --test_case value (one name, a comma-separated list,
// or "all") into the cases to run, in the order given.
func ParseCases(spec string) ([]Case, error) {
	byName := make(map[string]Case, len(Cases))
	for _, c := range Cases {
		byName[c.Name] = c
	}
	var out []Case
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		switch c, ok := byName[name]; {
		case name == "all":
			out = append(out, Cases...)
		case name == "":
			return nil, fmt.Errorf("empty test case name in %q", spec)
		case !ok:
			return nil, fmt.Errorf("unknown test case %q", name)
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// Outcomes of a case, as printed in result lines.
const (
	OutcomePassed      = "passed"
	OutcomeFailed      = "failed"
	OutcomeUnsupported = "unsupported"
)

// Result is one result line of the client.
type Result struct {
	Event      string  `json:"event"`
	Case       string  `json:"case"`
	Outcome    string  `json:"outcome"`
	DurationMS float64 `json:"duration_ms"`
	Message    string  `json:"message"`
}

// RunCase runs one case and turns what happened into a Result. A case
// listed in UnsupportedCases is not run. A panic inside a case becomes a failed
// result instead of ending the program.
func RunCase(ctx context.Context, c *Clients, tc Case) (res Result) {
	res = Result{Event: "result", Case: tc.Name}
	if reason, ok := UnsupportedCases[tc.Name]; ok {
		res.Outcome, res.Message = OutcomeUnsupported, reason
		return res
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			// The stack goes to the log (stderr); the result line keeps one line.
			slog.Error("case panicked", "case", tc.Name, "panic", p, "stack", string(debug.Stack()))
			res.Outcome = OutcomeFailed
			res.Message = fmt.Sprintf("%s panicked: %v", tc.Name, p)
		}
		// Microsecond resolution is plenty and keeps the lines short.
		res.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	}()
	if err := tc.Run(ctx, c); err != nil {
		res.Outcome, res.Message = OutcomeFailed, err.Error()
	} else {
		res.Outcome = OutcomePassed
	}
	return res
}

// WriteResult prints r as one JSON line with a single Write, so the line
// leaves the process at once (os.Stdout is not buffered in Go).
func WriteResult(w io.Writer, r Result) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// checks collects the failed checks of one case; a failed check never stops
// the next one.
type checks struct {
	failed []string
}

// errorf records one failed check: what was called, what came back, what
// was wanted.
func (c *checks) errorf(format string, args ...any) {
	c.failed = append(c.failed, fmt.Sprintf(format, args...))
}

// err is nil when no check failed, else every failure joined with "; ".
func (c *checks) err() error {
	if len(c.failed) == 0 {
		return nil
	}
	return errors.New(strings.Join(c.failed, "; "))
}
