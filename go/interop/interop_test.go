package interop

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
	"polyglot-grpc-interop/go/gen/helloworld"
)

// startServer serves s on a loopback port and returns stubs on one channel
// to it (made by NewChannel, so channel_soak can make more); both stop when
// the test ends.
func startServer(t *testing.T, s *grpc.Server) (*Clients, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return serveOn(t, s, lis)
}

// serveOn serves s on lis and returns stubs on a channel to it.
func serveOn(t *testing.T, s *grpc.Server, lis net.Listener) (*Clients, *grpc.ClientConn) {
	t.Helper()
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	cc, c, err := NewChannel(lis.Addr().String(), InsecureDialOptions()...)
	if err != nil {
		t.Fatalf("NewChannel: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return c, cc
}

// contractChecks is the "Checks" table of implementations/CONTRACT.md for
// the cases of DefaultGroups, copied by hand: the names each case must
// make, in the table's order. (TestCatalogueMatchesContract reads the
// whole table from the contract itself.)
var contractChecks = map[string][]string{
	"greeter_unary":               {"status", "message", "index"},
	"greeter_server_streaming":    {"status", "reply_count", "message", "index"},
	"greeter_client_streaming":    {"status", "message", "index"},
	"greeter_bidi_streaming":      {"status", "reply_count", "message", "index"},
	"empty_unary":                 {"status"},
	"large_unary":                 {"status", "payload_size", "payload_body", "payload_type"},
	"client_streaming":            {"status", "aggregated_size"},
	"server_streaming":            {"status", "response_count", "payload_size", "payload_body", "payload_type"},
	"ping_pong":                   {"status", "response_count", "payload_size", "payload_body", "payload_type"},
	"empty_stream":                {"status", "response_count"},
	"custom_metadata":             {"unary.status", "unary.payload_size", "unary.payload_body", "unary.payload_type", "unary.echo_initial", "unary.echo_trailing", "duplex.status", "duplex.response_count", "duplex.payload_size", "duplex.payload_body", "duplex.payload_type", "duplex.echo_initial", "duplex.echo_trailing"},
	"status_code_and_message":     {"unary.status_code", "unary.status_message", "duplex.status_code", "duplex.status_message"},
	"special_status_message":      {"status_code", "status_message"},
	"unimplemented_method":        {"status_code"},
	"unimplemented_service":       {"status_code"},
	"cancel_after_begin":          {"status_code"},
	"cancel_after_first_response": {"status", "payload_size", "payload_body", "payload_type", "status_code"},
	"timeout_on_sleeping_server":  {"status_code"},
	"client_compressed_unary":     {"probe.status_code", "compressed.status", "compressed.payload_size", "compressed.payload_body", "compressed.payload_type", "compressed.sent_compressed", "uncompressed.status", "uncompressed.payload_size", "uncompressed.payload_body", "uncompressed.payload_type"},
	"server_compressed_unary":     {"compressed.status", "compressed.payload_size", "compressed.payload_body", "compressed.payload_type", "compressed.response_compressed", "uncompressed.status", "uncompressed.payload_size", "uncompressed.payload_body", "uncompressed.payload_type", "uncompressed.response_compressed"},
	"client_compressed_streaming": {"probe.status_code", "stream.status", "stream.aggregated_size", "stream.sent_compressed"},
	"server_compressed_streaming": {"status", "response_count", "payload_size", "payload_body", "payload_type", "response_compressed"},
	"rpc_soak":                    {"completed", "failures"},
	"channel_soak":                {"completed", "failures"},
}

// allPassed maps every name to "passed".
func allPassed(names []string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		out[n] = CheckPassed
	}
	return out
}

// defaultGroupCases are the cases of Cases in DefaultGroups.
func defaultGroupCases() []Case {
	var out []Case
	for _, c := range Cases {
		if slices.Contains(DefaultGroups, c.Group) {
			out = append(out, c)
		}
	}
	return out
}

// TestCaseTableMatchesContract keeps the default cases equal to the
// contract's checks table: the same cases, each with the same check names
// in the same order.
func TestCaseTableMatchesContract(t *testing.T) {
	cases := defaultGroupCases()
	if len(cases) != len(contractChecks) {
		t.Errorf("Cases has %d cases in the default groups, the contract %d", len(cases), len(contractChecks))
	}
	for _, tc := range cases {
		if want, ok := contractChecks[tc.Name]; !ok || !slices.Equal(tc.CheckNames, want) {
			t.Errorf("%s CheckNames = %q, want %q", tc.Name, tc.CheckNames, want)
		}
	}
}

// TestAllCasesAgainstOwnServer runs every client case of DefaultGroups
// against the server of this package: each must pass (or be declared
// unsupported) and name exactly the checks of its row of the contract, all
// passed.
func TestAllCasesAgainstOwnServer(t *testing.T) {
	c, _ := startServer(t, NewServer(DefaultGreeting))
	for _, tc := range defaultGroupCases() {
		t.Run(tc.Name, func(t *testing.T) {
			res := RunCase(t.Context(), c, tc)
			if _, ok := UnsupportedCases[tc.Name]; ok {
				if res.Outcome != OutcomeUnsupported {
					t.Errorf("RunCase(%s) outcome = %s, want unsupported", tc.Name, res.Outcome)
				}
				return
			}
			if res.Outcome != OutcomePassed || res.Message != "" {
				t.Errorf("RunCase(%s) = %s %q, want passed", tc.Name, res.Outcome, res.Message)
			}
			if want := allPassed(contractChecks[tc.Name]); !maps.Equal(res.Checks, want) {
				t.Errorf("RunCase(%s) checks = %v\nwant %v", tc.Name, res.Checks, want)
			}
			if res.NotChecked == nil || len(res.NotChecked) != 0 {
				t.Errorf("RunCase(%s) not_checked = %#v, want {}", tc.Name, res.NotChecked)
			}
			isSoak := tc.Name == "rpc_soak" || tc.Name == "channel_soak"
			if isSoak != (res.Metrics != nil) {
				t.Errorf("RunCase(%s) metrics = %+v, want metrics for the soak cases only", tc.Name, res.Metrics)
			}
		})
	}
}

// caseNamed returns the case of Cases called name.
func caseNamed(t *testing.T, name string) Case {
	t.Helper()
	i := slices.IndexFunc(Cases, func(c Case) bool { return c.Name == name })
	if i < 0 {
		t.Fatalf("no case %q", name)
	}
	return Cases[i]
}

// TestWrongGreetingIsCaught proves that the Greeter cases check the text,
// under the check "message", and that the call itself still passes.
func TestWrongGreetingIsCaught(t *testing.T) {
	c, _ := startServer(t, NewServer("Hi"))
	res := RunCase(t.Context(), c, caseNamed(t, "greeter_unary"))
	want := `SayHello message = "Hi interop", want "Hello interop"`
	if res.Outcome != OutcomeFailed || res.Message != want {
		t.Errorf("greeter_unary against a Hi server = %s %q, want failed %q", res.Outcome, res.Message, want)
	}
	wantChecks := map[string]string{"status": CheckPassed, "message": CheckFailed, "index": CheckPassed}
	if !maps.Equal(res.Checks, wantChecks) {
		t.Errorf("greeter_unary against a Hi server: checks = %v, want %v", res.Checks, wantChecks)
	}
	for _, tc := range Cases[1:4] {
		res := RunCase(t.Context(), c, tc)
		if res.Outcome != OutcomeFailed || !strings.Contains(res.Message, `"Hi `) {
			t.Errorf("%s against a Hi server = %s %q, want failed naming the wrong text", tc.Name, res.Outcome, res.Message)
		}
		if res.Checks["message"] != CheckFailed || res.Checks["status"] != CheckPassed || res.Checks["index"] != CheckPassed {
			t.Errorf("%s against a Hi server: checks = %v, want message failed, status and index passed", tc.Name, res.Checks)
		}
	}
}

// chatServer answers SayHelloChat like GreeterServer and records the names
// it received, one slice per call. With dropToken it answers each name
// without the token, as a server would that makes up its replies.
type chatServer struct {
	GreeterServer
	dropToken bool
	mu        sync.Mutex
	calls     [][]string
}

func (s *chatServer) SayHelloChat(stream grpc.BidiStreamingServer[helloworld.HelloRequest, helloworld.HelloReply]) error {
	s.mu.Lock()
	call := len(s.calls)
	s.calls = append(s.calls, nil)
	s.mu.Unlock()
	for i := int32(1); ; i++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := req.GetName()
		s.mu.Lock()
		s.calls[call] = append(s.calls[call], name)
		s.mu.Unlock()
		if s.dropToken {
			name, _, _ = strings.Cut(name, " ")
		}
		if err := stream.Send(&helloworld.HelloReply{Message: "Hello " + name, Index: i}); err != nil {
			return err
		}
	}
}

// TestBidiToken checks that greeter_bidi_streaming sends "<name> <token>"
// with one fresh 8-hex-digit token per call, and wants it back.
func TestBidiToken(t *testing.T) {
	srv := &chatServer{GreeterServer: GreeterServer{Greeting: DefaultGreeting}}
	s := grpc.NewServer()
	helloworld.RegisterGreeterServer(s, srv)
	c, _ := startServer(t, s)
	tc := caseNamed(t, "greeter_bidi_streaming")
	for range 2 {
		if res := RunCase(t.Context(), c, tc); res.Outcome != OutcomePassed {
			t.Fatalf("greeter_bidi_streaming = %s %q, want passed", res.Outcome, res.Message)
		}
	}
	name := regexp.MustCompile(`^(alice|bob|carol|dave) ([0-9a-f]{8})$`)
	var tokens []string
	for i, call := range srv.calls {
		var names []string
		token := ""
		for _, n := range call {
			m := name.FindStringSubmatch(n)
			if m == nil {
				t.Fatalf("call %d sent name %q, want \"<name> <8 lowercase hex digits>\"", i+1, n)
			}
			names = append(names, m[1])
			if token != "" && m[2] != token {
				t.Errorf("call %d sent tokens %q and %q, want one token per call", i+1, token, m[2])
			}
			token = m[2]
		}
		if !slices.Equal(names, greeterChatNames) {
			t.Errorf("call %d sent names %q, want %q each with the token", i+1, call, greeterChatNames)
		}
		tokens = append(tokens, token)
	}
	if len(tokens) != 2 || tokens[0] == tokens[1] {
		t.Errorf("two calls used tokens %q, want two different ones", tokens)
	}

	// A server that answers without the token is caught.
	srv.dropToken = true
	res := RunCase(t.Context(), c, tc)
	if res.Outcome != OutcomeFailed || res.Checks["message"] != CheckFailed || !strings.Contains(res.Message, `message = "Hello alice", want "Hello alice `) {
		t.Errorf("greeter_bidi_streaming against a server that drops the token = %s %q %v, want failed on message", res.Outcome, res.Message, res.Checks)
	}
}

// shortServer answers UnaryCall one byte short and echoes no metadata.
type shortServer struct {
	TestServer
}

func (*shortServer) UnaryCall(_ context.Context, req *testingpb.SimpleRequest) (*testingpb.SimpleResponse, error) {
	return &testingpb.SimpleResponse{Payload: newPayload(int(req.GetResponseSize()) - 1)}, nil
}

// TestEveryFailedCheckIsReported proves that a failed check does not stop
// the next one, that the message joins them with "; " and that each is
// recorded under its name.
func TestEveryFailedCheckIsReported(t *testing.T) {
	s := grpc.NewServer(grpc.StatsHandler(compressionStats{server: true}))
	testingpb.RegisterTestServiceServer(s, &shortServer{})
	c, _ := startServer(t, s)
	var ck Checks
	DoCustomMetadata(t.Context(), c, &ck)
	want := strings.Join([]string{
		"UnaryCall with echo metadata payload size = 314158, want 314159",
		`UnaryCall initial metadata x-grpc-test-echo-initial = [], want ["test_initial_metadata_value"]`,
		`UnaryCall trailing metadata x-grpc-test-echo-trailing-bin = [], want ["\xab\xab\xab"]`,
	}, "; ")
	if err := ck.err(); err == nil || err.Error() != want {
		t.Errorf("DoCustomMetadata against a short server = %v\nwant %s", err, want)
	}
	wantChecks := allPassed(contractChecks["custom_metadata"])
	for _, n := range []string{"unary.payload_size", "unary.echo_initial", "unary.echo_trailing"} {
		wantChecks[n] = CheckFailed
	}
	if got := ck.results(); !maps.Equal(got, wantChecks) {
		t.Errorf("DoCustomMetadata against a short server: checks = %v\nwant %v", got, wantChecks)
	}
}

// oddServer answers UnaryCall with the right size, but a non-zero byte and
// a type other than COMPRESSABLE (1, UNCOMPRESSABLE in the official proto,
// which this repository's copy leaves out).
type oddServer struct {
	TestServer
}

func (*oddServer) UnaryCall(_ context.Context, req *testingpb.SimpleRequest) (*testingpb.SimpleResponse, error) {
	p := newPayload(int(req.GetResponseSize()))
	p.Type = testingpb.PayloadType(1)
	p.Body[7] = 1
	return &testingpb.SimpleResponse{Payload: p}, nil
}

// TestPayloadBodyAndType proves that the body and the type of a payload are
// checked, apart from its size.
func TestPayloadBodyAndType(t *testing.T) {
	s := grpc.NewServer()
	testingpb.RegisterTestServiceServer(s, &oddServer{})
	c, _ := startServer(t, s)
	res := RunCase(t.Context(), c, caseNamed(t, "large_unary"))
	want := "UnaryCall payload has byte 0x01 at offset 7, want all zero bytes; UnaryCall payload type = 1, want COMPRESSABLE"
	wantChecks := map[string]string{"status": CheckPassed, "payload_size": CheckPassed, "payload_body": CheckFailed, "payload_type": CheckFailed}
	if res.Outcome != OutcomeFailed || res.Message != want || !maps.Equal(res.Checks, wantChecks) {
		t.Errorf("large_unary against an odd server = %s %q %v\nwant failed %q %v", res.Outcome, res.Message, res.Checks, want, wantChecks)
	}
}

// TestExpectCompressed checks that the server sees whether a request
// message arrived compressed.
func TestExpectCompressed(t *testing.T) {
	c, _ := startServer(t, NewServer(DefaultGreeting))
	req := compressedUnaryRequest(true)
	if _, err := c.Test.UnaryCall(t.Context(), req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("UnaryCall(expect_compressed=true) uncompressed: %v, want InvalidArgument", err)
	}
	if _, err := c.Test.UnaryCall(t.Context(), req, grpc.UseCompressor(gzip.Name)); err != nil {
		t.Errorf("UnaryCall(expect_compressed=true) gzip: %v, want OK", err)
	}
	// A tiny message too: its gzip form is larger than the message itself.
	small := &testingpb.SimpleRequest{ExpectCompressed: &testingpb.BoolValue{Value: true}}
	if _, err := c.Test.UnaryCall(t.Context(), small, grpc.UseCompressor(gzip.Name)); err != nil {
		t.Errorf("UnaryCall(small, expect_compressed=true) gzip: %v, want OK", err)
	}
	if _, err := c.Test.UnaryCall(t.Context(), small); status.Code(err) != codes.InvalidArgument {
		t.Errorf("UnaryCall(small, expect_compressed=true) uncompressed: %v, want InvalidArgument", err)
	}

	// The hard one: an uncompressed message on a call whose grpc-encoding
	// is gzip, so only the message's own flag tells.
	claim := &testingpb.StreamingInputCallRequest{ExpectCompressed: &testingpb.BoolValue{Value: true}, Payload: newPayload(100)}
	plainCall, err := c.Test.StreamingInputCall(t.Context())
	if err != nil {
		t.Fatalf("StreamingInputCall: %v", err)
	}
	var plain grpc.PreparedMsg
	if err := plain.Encode(plainCall, claim); err != nil {
		t.Fatalf("PreparedMsg.Encode: %v", err)
	}
	if _, err := plainCall.CloseAndRecv(); err != nil {
		t.Fatalf("StreamingInputCall with no message: %v", err)
	}
	gzipCall, err := c.Test.StreamingInputCall(t.Context(), grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatalf("StreamingInputCall(gzip): %v", err)
	}
	_ = gzipCall.Send(claim)
	_ = gzipCall.SendMsg(&plain)
	if _, err := gzipCall.CloseAndRecv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("StreamingInputCall(gzip) with a compressed, then an uncompressed expect_compressed message: %v, want InvalidArgument", err)
	}
}

// TestServerMixesCompressionInOneStream checks the server's per-response
// compression in both orders.
func TestServerMixesCompressionInOneStream(t *testing.T) {
	c, _ := startServer(t, NewServer(DefaultGreeting))
	for _, flags := range [][]bool{{true, false}, {false, true, false}} {
		ctx, rec := withCallRecord(t.Context())
		req := &testingpb.StreamingOutputCallRequest{}
		for _, f := range flags {
			req.ResponseParameters = append(req.ResponseParameters, &testingpb.ResponseParameters{
				Size: 1000, Compressed: &testingpb.BoolValue{Value: f},
			})
		}
		stream, err := c.Test.StreamingOutputCall(ctx, req)
		if err != nil {
			t.Fatalf("StreamingOutputCall: %v", err)
		}
		for range flags {
			if _, err := stream.Recv(); err != nil {
				t.Fatalf("StreamingOutputCall Recv: %v", err)
			}
		}
		got := rec.received()
		if len(got) != len(flags) {
			t.Fatalf("StreamingOutputCall%v: recorded %d responses, want %d", flags, len(got), len(flags))
		}
		for i := range flags {
			if got[i] != flags[i] {
				t.Errorf("StreamingOutputCall%v response %d compressed = %t, want %t", flags, i+1, got[i], flags[i])
			}
		}
	}
}

// TestHealth checks that the server reports SERVING overall and per service.
func TestHealth(t *testing.T) {
	_, cc := startServer(t, NewServer(DefaultGreeting))
	h := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", "helloworld.Greeter", "grpc.testing.TestService", "grpc.health.v1.Health"} {
		resp, err := h.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Health.Check(%q) = %v, %v, want SERVING", svc, resp.GetStatus(), err)
		}
	}
	if _, err := h.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "grpc.testing.UnimplementedService"}); status.Code(err) != codes.NotFound {
		t.Errorf("Health.Check(UnimplementedService) = %v, want NotFound", err)
	}
}

func TestParseCases(t *testing.T) {
	all, err := ParseCases("all")
	names := make([]string, len(all))
	for i, c := range all {
		names[i] = c.Name
	}
	if err != nil || len(all) != 24 || names[0] != "greeter_unary" || !slices.Equal(names[21:], []string{"server_compressed_streaming", "rpc_soak", "channel_soak"}) {
		t.Errorf(`ParseCases("all") = %q, %v; want the 24 cases in contract order, the soak cases last`, names, err)
	}
	got, err := ParseCases("large_unary, empty_unary")
	if err != nil || len(got) != 2 || got[0].Name != "large_unary" || got[1].Name != "empty_unary" {
		t.Errorf(`ParseCases("large_unary, empty_unary") = %v, %v; want the two in that order`, got, err)
	}
	// Any case of the catalogue can be asked for, by name.
	got, err = ParseCases("http_503,goaway,mtls_no_client_cert,silent_server")
	names = nil
	for _, c := range got {
		names = append(names, c.Name+"/"+c.Group)
	}
	want := []string{"http_503/wire", "goaway/http2_negative", "mtls_no_client_cert/tls", "silent_server/wire"}
	if err != nil || !slices.Equal(names, want) {
		t.Errorf("ParseCases(cases of the other groups) = %q, %v; want %q", names, err, want)
	}
	for _, bad := range []string{"", "large_unary,", "no_such_case"} {
		if _, err := ParseCases(bad); err == nil {
			t.Errorf("ParseCases(%q) succeeded, want an error", bad)
		}
	}
}

func TestRunCaseTurnsPanicIntoFailure(t *testing.T) {
	res := RunCase(t.Context(), nil, Case{Name: "boom", Run: func(context.Context, *Clients, *Checks) { panic("kaput") }})
	if res.Outcome != OutcomeFailed || res.Message != "boom panicked: kaput" || len(res.Checks) != 0 {
		t.Errorf("RunCase(panicking case) = %s %q %v, want failed %q and no checks", res.Outcome, res.Message, res.Checks, "boom panicked: kaput")
	}
	res = RunCase(t.Context(), nil, Case{Name: "two", CheckNames: []string{"status", "index"}, Run: func(_ context.Context, _ *Clients, ck *Checks) {
		ck.fail("status", "a")
		ck.pass("index")
		ck.fail("index", "b")
		ck.pass("index")
	}})
	want := map[string]string{"status": CheckFailed, "index": CheckFailed}
	if res.Outcome != OutcomeFailed || res.Message != "a; b" || !maps.Equal(res.Checks, want) {
		t.Errorf("RunCase(failing case) = %s %q %v, want failed %q %v", res.Outcome, res.Message, res.Checks, "a; b", want)
	}
}

// TestRunCaseHoldsCaseToItsRow checks that a case cannot print a check
// outside its row, nor pass without making every check of its row.
func TestRunCaseHoldsCaseToItsRow(t *testing.T) {
	row := []string{"status", "message"}
	res := RunCase(t.Context(), nil, Case{Name: "extra", CheckNames: row, Run: func(_ context.Context, _ *Clients, ck *Checks) {
		ck.pass("status")
		ck.pass("message")
		ck.pass("nonsense")
	}})
	want := map[string]string{"status": CheckPassed, "message": CheckPassed}
	if res.Outcome != OutcomeFailed || res.Message != `extra made check "nonsense", which is not in its row of the checks table` || !maps.Equal(res.Checks, want) {
		t.Errorf("RunCase(case with a check outside its row) = %s %q %v, want failed, without it", res.Outcome, res.Message, res.Checks)
	}
	res = RunCase(t.Context(), nil, Case{Name: "short", CheckNames: row, Run: func(_ context.Context, _ *Clients, ck *Checks) {
		ck.pass("status")
	}})
	if res.Outcome != OutcomeFailed || res.Message != `short did not make check "message"` {
		t.Errorf("RunCase(case missing a check) = %s %q, want failed", res.Outcome, res.Message)
	}
	// A failed case may leave out a check it could not reach.
	res = RunCase(t.Context(), nil, Case{Name: "unreached", CheckNames: row, Run: func(_ context.Context, _ *Clients, ck *Checks) {
		ck.fail("status", "no reply")
	}})
	if res.Outcome != OutcomeFailed || res.Message != "no reply" || !maps.Equal(res.Checks, map[string]string{"status": CheckFailed}) {
		t.Errorf("RunCase(case failed before its second check) = %s %q %v, want failed %q", res.Outcome, res.Message, res.Checks, "no reply")
	}
}

// shortGrace sets CallGrace to d for the test.
func shortGrace(t *testing.T, d time.Duration) {
	old := CallGrace
	CallGrace = d
	t.Cleanup(func() { CallGrace = old })
}

// runWithin runs RunCase, failing the test when it does not return within
// limit (instead of hanging with the case).
func runWithin(t *testing.T, limit time.Duration, tc Case) Result {
	t.Helper()
	got := make(chan Result, 1)
	go func() { got <- RunCase(t.Context(), nil, tc) }()
	select {
	case res := <-got:
		return res
	case <-time.After(limit):
		t.Fatalf("RunCase(%s) did not return within %s", tc.Name, limit)
		return Result{}
	}
}

// TestBackstop checks that a case whose call the library does not end
// fails CallGrace after the call's deadline, on the status check of that
// call, and that RunCase does not wait for it.
func TestBackstop(t *testing.T) {
	shortGrace(t, 100*time.Millisecond)
	stuck := make(chan struct{}) // what the calls wait on: never, until the test ends
	t.Cleanup(func() { close(stuck) })
	message := regexp.MustCompile(`^blocked did not end within \d+ms: grpc-go did not end a call 100ms after its deadline$`)

	// A call that ignores its 20 ms deadline.
	res := runWithin(t, 5*time.Second, Case{Name: "blocked", CheckNames: []string{"status", "message"}, Run: func(ctx context.Context, _ *Clients, ck *Checks) {
		_, cancel := ck.withTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		<-stuck
	}})
	if res.Outcome != OutcomeFailed || !message.MatchString(res.Message) || !maps.Equal(res.Checks, map[string]string{"status": CheckFailed}) {
		t.Errorf("RunCase(blocked case) = %s %q %v, want failed %q, status failed", res.Outcome, res.Message, res.Checks, message)
	}
	if res.DurationMS < 120 {
		t.Errorf("RunCase(blocked case) gave up after %v ms, want after the deadline (20 ms) + CallGrace (100 ms)", res.DurationMS)
	}

	// Stuck after the first response, as cancel_after_first_response could
	// be: what was recorded stays, the call's status_code fails.
	row := contractChecks["cancel_after_first_response"]
	res = runWithin(t, 5*time.Second, Case{Name: "blocked", CheckNames: row, Run: func(ctx context.Context, _ *Clients, ck *Checks) {
		_, cancel := ck.withTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		for _, n := range row[:4] {
			ck.pass(n)
		}
		<-stuck
	}})
	want := allPassed(row)
	want["status_code"] = CheckFailed
	if res.Outcome != OutcomeFailed || !message.MatchString(res.Message) || !maps.Equal(res.Checks, want) {
		t.Errorf("RunCase(case blocked after its first response) = %s %q %v, want failed, status_code failed", res.Outcome, res.Message, res.Checks)
	}

	// The second of two calls does not end: its status fails.
	res = runWithin(t, 5*time.Second, Case{Name: "blocked", CheckNames: []string{"unary.status_code", "duplex.status_code"}, Run: func(ctx context.Context, _ *Clients, ck *Checks) {
		_, cancel := ck.withTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		ck.pass("unary.status_code")
		_, cancel2 := ck.withTimeout(ctx, 20*time.Millisecond)
		defer cancel2()
		<-stuck
	}})
	want = map[string]string{"unary.status_code": CheckPassed, "duplex.status_code": CheckFailed}
	if res.Outcome != OutcomeFailed || !message.MatchString(res.Message) || !maps.Equal(res.Checks, want) {
		t.Errorf("RunCase(case blocked in its second call) = %s %q %v, want failed, duplex.status_code failed", res.Outcome, res.Message, res.Checks)
	}
}

// TestBackstopFollowsEachCall checks that the backstop counts from the
// deadline of the call running now: a case of several calls, each ending
// before its deadline, is not given up even when it takes longer than the
// first call's deadline plus CallGrace.
func TestBackstopFollowsEachCall(t *testing.T) {
	shortGrace(t, 100*time.Millisecond)
	res := runWithin(t, 5*time.Second, Case{Name: "slow", CheckNames: []string{"status"}, Run: func(ctx context.Context, _ *Clients, ck *Checks) {
		for range 4 {
			_, cancel := ck.withTimeout(ctx, 200*time.Millisecond)
			time.Sleep(100 * time.Millisecond)
			cancel()
		}
		ck.pass("status")
	}})
	if res.Outcome != OutcomePassed {
		t.Errorf("RunCase(four calls of 100 ms, each with a 200 ms deadline) = %s %q, want passed", res.Outcome, res.Message)
	}
}

func TestWriteResult(t *testing.T) {
	var b strings.Builder
	r := Result{Event: "result", Case: "large_unary", Outcome: OutcomeFailed, DurationMS: 3.21, Message: "x <y> & z",
		Checks: map[string]string{"status": CheckPassed, "payload_size": CheckFailed}}
	if err := WriteResult(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `{"event":"result","case":"large_unary","outcome":"failed","duration_ms":3.21,"message":"x <y> & z",` +
		`"checks":{"payload_size":"failed","status":"passed"},"not_checked":{}}` + "\n"
	if b.String() != want {
		t.Errorf("WriteResult = %q, want %q", b.String(), want)
	}
}

// TestManifestListsUnsupportedCases keeps implementations/go.toml's
// [client.unsupported] equal to UnsupportedCases, since the runner reads
// the manifest and the client prints the map. The section holds only
// `case = "reason"` lines and comments, so a line scan is enough.
func TestManifestListsUnsupportedCases(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "implementations", "go.toml"))
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	listed := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[client.unsupported]":
			name, reason, ok := strings.Cut(line, "=")
			value, err := strconv.Unquote(strings.TrimSpace(reason))
			if !ok || err != nil {
				t.Fatalf("go.toml [client.unsupported]: cannot read line %q", line)
			}
			listed[strings.TrimSpace(name)] = value
		}
	}
	if !maps.Equal(listed, UnsupportedCases) {
		t.Errorf("go.toml [client.unsupported] = %v, want interop.UnsupportedCases = %v", listed, UnsupportedCases)
	}
}
