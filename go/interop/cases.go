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
	"slices"
	"strings"
	"sync"
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

// Clients are the stubs, all on one channel, that the client cases call,
// and what the soak cases need besides.
type Clients struct {
	Greeter       helloworld.GreeterClient
	Test          testingpb.TestServiceClient
	Unimplemented testingpb.UnimplementedServiceClient
	// Dial makes a new channel with the target, credentials and options of
	// the one the stubs use: channel_soak makes one per iteration, and each
	// http2_negative and wire case one for itself. NewChannel sets it; nil
	// when the channel's parameters are unknown (NewClients).
	Dial func() (*grpc.ClientConn, error)
	// Target is the target of the client's channel ("host:port"), which the
	// tls cases connect to; NewChannel sets it.
	Target string
	// Soak is what the soak flags say; NewClients sets DefaultSoakConfig.
	Soak SoakConfig
	// TLS is what the tls cases make their channels from; nil when the
	// client was not given it (the tls cases then fail, saying so).
	TLS *TLSCaseConfig
}

// NewClients makes the stubs of every service the cases call on cc. It
// cannot make further channels like cc (Dial is nil): use NewChannel for
// a client that runs channel_soak.
func NewClients(cc grpc.ClientConnInterface) *Clients {
	return &Clients{
		Greeter:       helloworld.NewGreeterClient(cc),
		Test:          testingpb.NewTestServiceClient(cc),
		Unimplemented: testingpb.NewUnimplementedServiceClient(cc),
		Soak:          DefaultSoakConfig(),
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

// Case groups, the names of src/cases.rs (CaseGroup).
const (
	GroupGreeter       = "greeter"
	GroupInterop       = "interop"
	GroupSoak          = "soak"
	GroupHTTP2Negative = "http2_negative"
	GroupWire          = "wire"
	GroupTLS           = "tls"
	GroupBadInput      = "bad_input"
)

// DefaultGroups are the groups of --test_case all: those every server serves.
var DefaultGroups = []string{GroupGreeter, GroupInterop, GroupSoak}

// Case is one client case: its contract name, its group, the names of the
// checks it makes (its row of the "Checks" table of CONTRACT.md) and the
// function that runs it. Run records every check it makes in ck, under a
// name of CheckNames; a failed check never stops the next one. Run is nil
// for the bad_input cases, which no client plays (ParseCases refuses them).
type Case struct {
	Name       string
	Group      string
	CheckNames []string
	Run        func(ctx context.Context, c *Clients, ck *Checks)
}

// Rows of the checks table shared by several cases.
var (
	payloadChecks = []string{"payload_size", "payload_body", "payload_type"}
	greeterChecks = []string{"status", "message", "index"}
	// greeterStreamChecks is for the Greeter calls with several replies.
	greeterStreamChecks = []string{"status", "reply_count", "message", "index"}
	// streamPayloadChecks is for the TestService calls with several responses.
	streamPayloadChecks = concat([]string{"status", "response_count"}, payloadChecks)
	soakChecks          = []string{"completed", "failures"}
)

// concat joins name lists into a new one.
func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// prefixed returns names with prefix put before each.
func prefixed(prefix string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// Cases lists every case of the catalogue (src/cases.rs), in its order, so
// that any of them can be asked for; "all" runs those of DefaultGroups in
// this order.
var Cases = slices.Concat(defaultCases, http2NegativeCases, wireCaseList(), tlsCaseList(), badInputCases())

// defaultCases are the cases of DefaultGroups, in the order of the
// contract's tables.
var defaultCases = []Case{
	{"greeter_unary", GroupGreeter, greeterChecks, DoGreeterUnary},
	{"greeter_server_streaming", GroupGreeter, greeterStreamChecks, DoGreeterServerStreaming},
	{"greeter_client_streaming", GroupGreeter, greeterChecks, DoGreeterClientStreaming},
	{"greeter_bidi_streaming", GroupGreeter, greeterStreamChecks, DoGreeterBidiStreaming},
	{"empty_unary", GroupInterop, []string{"status"}, DoEmptyUnary},
	{"large_unary", GroupInterop, concat([]string{"status"}, payloadChecks), DoLargeUnary},
	{"client_streaming", GroupInterop, []string{"status", "aggregated_size"}, DoClientStreaming},
	{"server_streaming", GroupInterop, streamPayloadChecks, DoServerStreaming},
	{"ping_pong", GroupInterop, streamPayloadChecks, DoPingPong},
	{"empty_stream", GroupInterop, []string{"status", "response_count"}, DoEmptyStream},
	{"custom_metadata", GroupInterop, concat(
		prefixed("unary.", concat([]string{"status"}, payloadChecks, []string{"echo_initial", "echo_trailing"})...),
		prefixed("duplex.", concat(streamPayloadChecks, []string{"echo_initial", "echo_trailing"})...),
	), DoCustomMetadata},
	{"status_code_and_message", GroupInterop, concat(
		prefixed("unary.", "status_code", "status_message"),
		prefixed("duplex.", "status_code", "status_message"),
	), DoStatusCodeAndMessage},
	{"special_status_message", GroupInterop, []string{"status_code", "status_message"}, DoSpecialStatusMessage},
	{"unimplemented_method", GroupInterop, []string{"status_code"}, DoUnimplementedMethod},
	{"unimplemented_service", GroupInterop, []string{"status_code"}, DoUnimplementedService},
	{"cancel_after_begin", GroupInterop, []string{"status_code"}, DoCancelAfterBegin},
	{"cancel_after_first_response", GroupInterop, concat([]string{"status"}, payloadChecks, []string{"status_code"}), DoCancelAfterFirstResponse},
	{"timeout_on_sleeping_server", GroupInterop, []string{"status_code"}, DoTimeoutOnSleepingServer},
	{"client_compressed_unary", GroupInterop, concat(
		[]string{"probe.status_code"},
		prefixed("compressed.", concat([]string{"status"}, payloadChecks, []string{"sent_compressed"})...),
		prefixed("uncompressed.", concat([]string{"status"}, payloadChecks)...),
	), DoClientCompressedUnary},
	{"server_compressed_unary", GroupInterop, concat(
		prefixed("compressed.", concat([]string{"status"}, payloadChecks, []string{"response_compressed"})...),
		prefixed("uncompressed.", concat([]string{"status"}, payloadChecks, []string{"response_compressed"})...),
	), DoServerCompressedUnary},
	{"client_compressed_streaming", GroupInterop, []string{"probe.status_code", "stream.status", "stream.aggregated_size", "stream.sent_compressed"}, DoClientCompressedStreaming},
	{"server_compressed_streaming", GroupInterop, concat(streamPayloadChecks, []string{"response_compressed"}), DoServerCompressedStreaming},
	{"rpc_soak", GroupSoak, soakChecks, DoRPCSoak},
	{"channel_soak", GroupSoak, soakChecks, DoChannelSoak},
}

// badInputNames are the cases of the bad_input group, in catalogue order.
var badInputNames = []string{
	"oversized_request", "content_type_text_plain", "content_type_missing", "unknown_request_encoding",
	"truncated_request_message", "invalid_request_protobuf", "unknown_service", "unknown_method",
	"request_compressed_without_encoding", "invalid_grpc_timeout", "grpc_timeout_too_many_digits",
	"grpc_timeout_overflow", "metadata_64k", "metadata_1m", "streams_500", "held_streams_64",
	"unfinished_prefaces_200", "truncated_frame",
}

// badInputCases are the bad_input cases: the bad client of fixtures/ plays
// them against servers, no client does. They are named so that the list is
// the catalogue's, and have no Run: ParseCases refuses them.
func badInputCases() []Case {
	out := make([]Case, len(badInputNames))
	for i, name := range badInputNames {
		out[i] = Case{Name: name, Group: GroupBadInput, CheckNames: []string{"answer", "alive"}}
	}
	return out
}

// UnsupportedCases maps each case this client cannot express to the reason.
// implementations/go.toml lists the same cases with the same reasons.
// It is empty: grpc-go 1.85 can express every client case (see
// DoClientCompressedStreaming for the one that needed care).
var UnsupportedCases = map[string]string{}

// ParseCases turns a --test_case value (one name, a comma-separated list,
// or "all", the cases of DefaultGroups) into the cases to run, in the order
// given. An unknown name is an error, and so is a bad_input case: the bad
// client plays those against servers, a client does not.
func ParseCases(spec string) ([]Case, error) {
	byName := make(map[string]Case, len(Cases))
	for _, c := range Cases {
		byName[c.Name] = c
	}
	var out []Case
	var serverSide []string
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		switch c, ok := byName[name]; {
		case name == "all":
			for _, c := range Cases {
				if slices.Contains(DefaultGroups, c.Group) {
					out = append(out, c)
				}
			}
		case name == "":
			return nil, fmt.Errorf("empty test case name in %q", spec)
		case !ok:
			return nil, fmt.Errorf("unknown test case %q", name)
		case c.Group == GroupBadInput:
			serverSide = append(serverSide, name)
		default:
			out = append(out, c)
		}
	}
	if len(serverSide) > 0 {
		return nil, fmt.Errorf("%s: bad_input case(s), played by the bad client of fixtures/ against servers, not by a client",
			strings.Join(serverSide, ", "))
	}
	return out, nil
}

// Outcomes of a case, as printed in result lines.
const (
	OutcomePassed      = "passed"
	OutcomeFailed      = "failed"
	OutcomeUnsupported = "unsupported"
)

// Values of the checks object of a result line.
const (
	CheckPassed = "passed"
	CheckFailed = "failed"
)

// Result is one result line of the client. Checks and NotChecked are
// printed as {} when empty, never null.
type Result struct {
	Event      string  `json:"event"`
	Case       string  `json:"case"`
	Outcome    string  `json:"outcome"`
	DurationMS float64 `json:"duration_ms"`
	Message    string  `json:"message"`
	// Checks maps each check the case made to CheckPassed or CheckFailed.
	Checks map[string]string `json:"checks"`
	// NotChecked maps each check of the case this client cannot make to the
	// reason. grpc-go lets the client make every check, so it stays empty.
	NotChecked map[string]string `json:"not_checked"`
	// Metrics is what a soak case measured; nil (absent) for other cases.
	Metrics *SoakMetrics `json:"metrics,omitempty"`
}

// CallGrace is how long after a call's deadline RunCase still waits for
// grpc-go to end the call before it gives the case up: the backstop of
// CONTRACT.md against a library that does not enforce deadlines. A variable
// so that tests can shorten it.
var CallGrace = 3 * time.Second

// finish is how a case's goroutine ended.
type finish struct {
	panicked bool
	value    any // what was recovered when panicked
}

// RunCase runs one case and turns what happened into a Result. A case
// listed in UnsupportedCases is not run. A panic inside a case becomes a
// failed result instead of ending the program.
//
// The case runs in its own goroutine. RunCase waits until CallGrace after
// the deadline of the call the case started last (Checks.withTimeout), or
// after the budget of a soak case (overall timeout + per-iteration maximum,
// Checks.setDeadline); if the case
// has not ended by then, grpc-go did not end a call its deadline should have
// ended, and RunCase returns a failed result at once, marking the status
// check of the call that did not end as failed. That goroutine is left
// behind (its context is cancelled); the client goes on with the next case.
func RunCase(ctx context.Context, c *Clients, tc Case) Result {
	res := Result{Event: "result", Case: tc.Name, Checks: map[string]string{}, NotChecked: map[string]string{}}
	if reason, ok := UnsupportedCases[tc.Name]; ok {
		res.Outcome, res.Message = OutcomeUnsupported, reason
		return res
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Until the case starts its first call, allow it one call's time.
	ck := &Checks{deadline: start.Add(RPCTimeout), moved: make(chan struct{}, 1)}
	finished := make(chan finish, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				// The stack goes to the log (stderr); the result line keeps one line.
				slog.Error("case panicked", "case", tc.Name, "panic", p, "stack", string(debug.Stack()))
				finished <- finish{panicked: true, value: p}
			}
		}()
		tc.Run(ctx, c, ck)
		finished <- finish{}
	}()

	end := func(f finish) Result {
		if f.panicked {
			ck.failCase(fmt.Sprintf("%s panicked: %v", tc.Name, f.value))
		}
		return ck.result(res, tc, time.Since(start))
	}
	// Each call the case starts moves the deadline (ck.moved): wait anew.
	for wait := CallGrace + time.Until(ck.lastDeadline()); wait > 0; wait = CallGrace + time.Until(ck.lastDeadline()) {
		timer := time.NewTimer(wait)
		select {
		case f := <-finished:
			timer.Stop()
			return end(f)
		case <-ck.moved:
			timer.Stop()
		case <-timer.C:
		}
	}
	select {
	case f := <-finished: // it ended just now
		return end(f)
	default:
	}
	took := time.Since(start)
	ck.giveUp(tc.CheckNames, fmt.Sprintf("%s did not end within %s: grpc-go did not end a call %s after its deadline",
		tc.Name, took.Round(time.Millisecond), CallGrace))
	return ck.result(res, tc, took)
}

// WriteResult prints r as one JSON line with a single Write (see WriteLine).
func WriteResult(w io.Writer, r Result) error {
	if r.Checks == nil {
		r.Checks = map[string]string{}
	}
	if r.NotChecked == nil {
		r.NotChecked = map[string]string{}
	}
	return WriteLine(w, r)
}

// WriteLine prints v as one JSON line with a single Write, so the line
// leaves the process at once (os.Stdout is not buffered in Go) and, through
// an io.MultiWriter, reaches each writer whole.
func WriteLine(w io.Writer, v any) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Checks records the checks of one case: each under its name of the
// contract's checks table, passed or failed, and the message of every
// failure (what was called, what came back, what was wanted). A check made
// several times is failed when any instance failed. RunCase makes one for
// each case and reads it, also while the case still runs (the backstop), so
// it is safe for concurrent use.
type Checks struct {
	mu       sync.Mutex
	passed   map[string]bool // check name -> passed so far
	failed   []string        // the message of every failure, in order
	deadline time.Time       // the deadline of the call the case started last
	moved    chan struct{}   // signalled (if not nil) when deadline changes
	soak     *soakTally      // the iterations of a soak case; nil for other cases
}

// check records one instance of the check name: passed when ok, else failed
// with the message format and args make. It returns ok.
func (c *Checks) check(name string, ok bool, format string, args ...any) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.passed == nil {
		c.passed = map[string]bool{}
	}
	if !ok {
		c.passed[name] = false
		c.failed = append(c.failed, fmt.Sprintf(format, args...))
	} else if _, seen := c.passed[name]; !seen {
		c.passed[name] = true
	}
	return ok
}

// pass records that the check name passed.
func (c *Checks) pass(name string) { c.check(name, true, "") }

// fail records that the check name failed, with a message.
func (c *Checks) fail(name string, format string, args ...any) { c.check(name, false, format, args...) }

// failCase records a failure that belongs to no check (a panic): the case
// fails with message.
func (c *Checks) failCase(message string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = append(c.failed, message)
}

// withTimeout is context.WithTimeout for one call of the case; it also
// tells RunCase when the call must have ended. The calls of a case are made
// one after another, so the deadline of the call started last is the one
// that counts.
func (c *Checks) withTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	c.setDeadline(time.Now().Add(timeout))
	return context.WithTimeout(ctx, timeout)
}

// setDeadline tells RunCase that the case must have ended by t (plus
// CallGrace): the deadline of a call, or the budget of a whole soak case.
func (c *Checks) setDeadline(t time.Time) {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	select {
	case c.moved <- struct{}{}:
	default: // a signal is pending already, or nobody watches (nil)
	}
}

func (c *Checks) lastDeadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline
}

// isStatusCheck tells whether name is the check that a call's end answers.
func isStatusCheck(name string) bool {
	_, base, _ := strings.Cut(name, ".")
	if base == "" {
		base = name
	}
	return base == "status" || base == "status_code"
}

// giveUp records the backstop's failure for a case that did not end. The
// cases run their calls one after another in the order of their row and
// record a call's status check when the call ends, so the first status
// check of the row not yet recorded belongs to the call that did not end:
// that one fails. (Should every status check be recorded, the first check
// not yet recorded fails, else the row's first status check.)
func (c *Checks) giveUp(row []string, message string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.passed == nil {
		c.passed = map[string]bool{}
	}
	c.failed = append(c.failed, message)
	pick := func(ok func(string) bool) bool {
		for _, name := range row {
			if ok(name) {
				c.passed[name] = false
				return true
			}
		}
		return false
	}
	unrecorded := func(name string) bool { _, seen := c.passed[name]; return !seen }
	if !pick(func(n string) bool { return isStatusCheck(n) && unrecorded(n) }) && !pick(unrecorded) {
		pick(isStatusCheck)
	}
}

// result fills res from what was recorded and took. It also holds the case
// to its row: a check outside the row, or a check of the row missing from a
// case that otherwise passed, is a bug of this client and fails the case
// rather than printing a line that breaks the contract.
func (c *Checks) result(res Result, tc Case, took time.Duration) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	failed := append([]string(nil), c.failed...)
	row := make(map[string]bool, len(tc.CheckNames))
	for _, name := range tc.CheckNames {
		row[name] = true
	}
	var outside []string
	for name, ok := range c.passed {
		if !row[name] {
			outside = append(outside, name)
			continue
		}
		res.Checks[name] = CheckPassed
		if !ok {
			res.Checks[name] = CheckFailed
		}
	}
	slices.Sort(outside)
	for _, name := range outside {
		failed = append(failed, fmt.Sprintf("%s made check %q, which is not in its row of the checks table", tc.Name, name))
	}
	if len(failed) == 0 {
		for _, name := range tc.CheckNames {
			if _, ok := res.Checks[name]; !ok {
				failed = append(failed, fmt.Sprintf("%s did not make check %q", tc.Name, name))
			}
		}
	}
	if len(failed) == 0 {
		res.Outcome = OutcomePassed
	} else {
		res.Outcome, res.Message = OutcomeFailed, strings.Join(failed, "; ")
	}
	if c.soak != nil {
		res.Metrics = c.soak.metrics()
	}
	// Microsecond resolution is plenty and keeps the lines short.
	res.DurationMS = float64(took.Microseconds()) / 1000
	return res
}

// err is nil when no check failed, else every failure joined with "; ".
func (c *Checks) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failed) == 0 {
		return nil
	}
	return errors.New(strings.Join(c.failed, "; "))
}

// results maps every check recorded so far to CheckPassed or CheckFailed.
func (c *Checks) results() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.passed))
	for name, ok := range c.passed {
		out[name] = CheckPassed
		if !ok {
			out[name] = CheckFailed
		}
	}
	return out
}
