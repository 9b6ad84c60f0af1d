package interop

import (
	"context"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// startServer serves s on a loopback port and returns stubs on one channel
// to it; both stop when the test ends.
func startServer(t *testing.T, s *grpc.Server) (*Clients, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), InsecureDialOptions()...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return NewClients(cc), cc
}

// TestAllCasesAgainstOwnServer runs every client case against the server
// of this package: each must pass (or be declared unsupported).
func TestAllCasesAgainstOwnServer(t *testing.T) {
	c, _ := startServer(t, NewServer(DefaultGreeting))
	for _, tc := range Cases {
		t.Run(tc.Name, func(t *testing.T) {
			res := RunCase(t.Context(), c, tc)
			want := OutcomePassed
			if _, ok := UnsupportedCases[tc.Name]; ok {
				want = OutcomeUnsupported
			}
			if res.Outcome != want {
				t.Errorf("RunCase(%s) outcome = %s (message %q), want %s", tc.Name, res.Outcome, res.Message, want)
			}
		})
	}
}

// TestWrongGreetingIsCaught proves that the Greeter cases check the text.
func TestWrongGreetingIsCaught(t *testing.T) {
	c, _ := startServer(t, NewServer("Hi"))
	res := RunCase(t.Context(), c, Case{"greeter_unary", DoGreeterUnary})
	want := `SayHello message = "Hi interop", want "Hello interop"`
	if res.Outcome != OutcomeFailed || res.Message != want {
		t.Errorf("greeter_unary against a Hi server = %s %q, want failed %q", res.Outcome, res.Message, want)
	}
	for _, tc := range Cases[1:4] {
		if res := RunCase(t.Context(), c, tc); res.Outcome != OutcomeFailed || !strings.Contains(res.Message, `"Hi `) {
			t.Errorf("%s against a Hi server = %s %q, want failed naming the wrong text", tc.Name, res.Outcome, res.Message)
		}
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
// the next one and that the message joins them with "; ".
func TestEveryFailedCheckIsReported(t *testing.T) {
	s := grpc.NewServer(grpc.StatsHandler(compressionStats{server: true}))
	testingpb.RegisterTestServiceServer(s, &shortServer{})
	c, _ := startServer(t, s)
	err := DoCustomMetadata(t.Context(), c)
	want := strings.Join([]string{
		"UnaryCall with echo metadata payload size = 314158, want 314159",
		`UnaryCall initial metadata x-grpc-test-echo-initial = [], want ["test_initial_metadata_value"]`,
		`UnaryCall trailing metadata x-grpc-test-echo-trailing-bin = [], want ["\xab\xab\xab"]`,
	}, "; ")
	if err == nil || err.Error() != want {
		t.Errorf("DoCustomMetadata against a short server = %v\nwant %s", err, want)
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
	if err != nil || len(all) != 22 || all[0].Name != "greeter_unary" || all[21].Name != "server_compressed_streaming" {
		t.Errorf(`ParseCases("all") = %d cases, %v; want the 22 cases in contract order`, len(all), err)
	}
	got, err := ParseCases("large_unary, empty_unary")
	if err != nil || len(got) != 2 || got[0].Name != "large_unary" || got[1].Name != "empty_unary" {
		t.Errorf(`ParseCases("large_unary, empty_unary") = %v, %v; want the two in that order`, got, err)
	}
	for _, bad := range []string{"", "large_unary,", "no_such_case"} {
		if _, err := ParseCases(bad); err == nil {
			t.Errorf("ParseCases(%q) succeeded, want an error", bad)
		}
	}
}

func TestRunCaseTurnsPanicIntoFailure(t *testing.T) {
	res := RunCase(t.Context(), nil, Case{"boom", func(context.Context, *Clients) error { panic("kaput") }})
	if res.Outcome != OutcomeFailed || res.Message != "boom panicked: kaput" {
		t.Errorf("RunCase(panicking case) = %s %q, want failed %q", res.Outcome, res.Message, "boom panicked: kaput")
	}
	res = RunCase(t.Context(), nil, Case{"two", func(context.Context, *Clients) error {
		return errors.New("a; b")
	}})
	if res.Outcome != OutcomeFailed || res.Message != "a; b" {
		t.Errorf("RunCase(failing case) = %s %q, want failed %q", res.Outcome, res.Message, "a; b")
	}
}

func TestWriteResult(t *testing.T) {
	var b strings.Builder
	r := Result{Event: "result", Case: "large_unary", Outcome: OutcomeFailed, DurationMS: 3.21, Message: "x <y> & z"}
	if err := WriteResult(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `{"event":"result","case":"large_unary","outcome":"failed","duration_ms":3.21,"message":"x <y> & z"}` + "\n"
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
