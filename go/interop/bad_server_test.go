package interop

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// The bad server of fixtures/ (Rust) is what the http2_negative and wire
// cases are played against in the matrix. These tests play them against
// stand-ins: fakeBadServer, a Go HTTP/2 server (net/http, unencrypted
// HTTP/2) that breaks its answers as most rows of the contract say, and
// grpc-go servers for what net/http cannot do (GOAWAY).

// fakeMode is how fakeBadServer answers.
type fakeMode int

const (
	// answerAsCase breaks the answer as the call's x-interop-case says.
	answerAsCase fakeMode = iota
	// answerRight answers every call as large_unary wants.
	answerRight
	// answerWrong answers with a payload one byte short, a non-zero byte
	// and a type other than COMPRESSABLE.
	answerWrong
)

// maxResponseSize is grpc-go's default receive limit, 4 MiB.
const maxResponseSize = 4 << 20

// fakeBadServer serves HTTP/2 without TLS and answers UnaryCall as mode
// says. Like the real bad server it allows one stream at a time. It records
// the x-interop-case of every request and the connections it saw.
type fakeBadServer struct {
	mode fakeMode
	addr string

	mu        sync.Mutex
	seen      []string // x-interop-case of each request, in order of arrival
	accepted  int      // connections accepted
	closed    int      // connections closed
	active    int      // requests being answered now
	maxActive int      // the most requests answered at once
}

type connKey struct{}

// startFakeBadServer serves a fakeBadServer on a loopback port for the
// test's life.
func startFakeBadServer(t *testing.T, mode fakeMode) *fakeBadServer {
	t.Helper()
	f := &fakeBadServer{mode: mode}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	srv := &http.Server{
		Handler:   http.HandlerFunc(f.serveHTTP),
		Protocols: new(http.Protocols),
		HTTP2:     &http.HTTP2Config{MaxConcurrentStreams: 1},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: func(_ net.Conn, s http.ConnState) {
			f.mu.Lock()
			defer f.mu.Unlock()
			switch s {
			case http.StateNew:
				f.accepted++
			case http.StateClosed, http.StateHijacked:
				f.closed++
			}
		},
	}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

// clients returns stubs on a channel to f made as the client makes its
// channel, so that the cases' Dial makes channels like it.
func (f *fakeBadServer) clients(t *testing.T) *Clients {
	t.Helper()
	cc, c, err := NewChannel(f.addr, InsecureDialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return c
}

// connections returns how many connections f accepted and saw closed.
func (f *fakeBadServer) connections() (accepted, closed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted, f.closed
}

// frame is one gRPC message: the compressed flag, the length, the bytes.
func frame(compressed bool, length int, msg []byte) []byte {
	out := make([]byte, 5, 5+len(msg))
	if compressed {
		out[0] = 1
	}
	binary.BigEndian.PutUint32(out[1:], uint32(length))
	return append(out, msg...)
}

// responseBytes encodes a SimpleResponse with a payload of size zero bytes.
func responseBytes(size int) []byte {
	b, err := proto.Marshal(&testingpb.SimpleResponse{Payload: newPayload(size)})
	if err != nil {
		panic(err)
	}
	return b
}

// tooLargeResponse is a SimpleResponse of exactly 4 MiB + 1 byte encoded.
func tooLargeResponse() []byte {
	for size := maxResponseSize - 16; ; size++ {
		if b := responseBytes(size); len(b) == maxResponseSize+1 {
			return b
		}
	}
}

func (f *fakeBadServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(CaseHeader)
	f.mu.Lock()
	f.seen = append(f.seen, name)
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	_, _ = io.Copy(io.Discard, r.Body)

	switch f.mode {
	case answerRight:
		name = "right"
	case answerWrong:
		name = "wrong"
	}
	h := w.Header()
	flush := func() { _ = http.NewResponseController(w).Flush() }
	// grpcStart sends the response headers of a gRPC answer.
	grpcStart := func() {
		h.Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		flush()
	}
	// trailers end the answer with these trailers (name, value, ...).
	trailers := func(kv ...string) {
		for i := 0; i < len(kv); i += 2 {
			h.Set(http.TrailerPrefix+kv[i], kv[i+1])
		}
	}
	right := frame(false, len(responseBytes(largeResponseSize)), responseBytes(largeResponseSize))

	if code, ok := strings.CutPrefix(name, "http_"); ok {
		n, _ := strconv.Atoi(code)
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(n)
		_, _ = io.WriteString(w, "not gRPC\n")
		return
	}
	switch name {
	case "right", "ping", "data_frame_padding", "no_df_padding_sanity_test", "goaway":
		grpcStart()
		_, _ = w.Write(right)
		trailers("grpc-status", "0")
	case "wrong":
		p := newPayload(largeResponseSize - 1)
		p.Type = testingpb.PayloadType(1)
		p.Body[7] = 1
		b, _ := proto.Marshal(&testingpb.SimpleResponse{Payload: p})
		grpcStart()
		_, _ = w.Write(frame(false, len(b), b))
		trailers("grpc-status", "0")
	case "max_streams":
		// Held back, so that streams above the limit would overlap.
		time.Sleep(20 * time.Millisecond)
		grpcStart()
		_, _ = w.Write(right)
		trailers("grpc-status", "0")
	case "rst_after_header", "rst_during_data", "rst_after_data":
		grpcStart()
		switch name {
		case "rst_during_data":
			_, _ = w.Write(right[:len(right)/2])
		case "rst_after_data":
			_, _ = w.Write(right)
		}
		flush()
		panic(http.ErrAbortHandler) // RST_STREAM
	case "missing_grpc_status":
		grpcStart()
		_, _ = w.Write(right)
		trailers("x-not-a-status", "1")
	case "non_grpc_content_type":
		h.Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html><body>not gRPC</body></html>")
	case "unparsable_grpc_status":
		grpcStart()
		_, _ = w.Write(right)
		trailers("grpc-status", "abc")
	case "truncated_message":
		grpcStart()
		_, _ = w.Write(frame(false, 100, make([]byte, 10)))
		trailers("grpc-status", "0")
	case "invalid_protobuf":
		// Field 1 (payload), length-delimited, announcing 100 bytes, 3 given.
		grpcStart()
		_, _ = w.Write(frame(false, 5, []byte{0x0a, 100, 0, 0, 0}))
		trailers("grpc-status", "0")
	case "response_too_large":
		b := tooLargeResponse()
		grpcStart()
		_, _ = w.Write(frame(false, len(b), b))
		trailers("grpc-status", "0")
	case "compressed_without_encoding":
		grpcStart()
		_, _ = w.Write(frame(true, len(right)-5, right[5:]))
		trailers("grpc-status", "0")
	case "unknown_response_encoding":
		h.Set("grpc-encoding", "x-unknown")
		grpcStart()
		_, _ = w.Write(frame(true, len(right)-5, right[5:]))
		trailers("grpc-status", "0")
	case "two_responses":
		grpcStart()
		_, _ = w.Write(right)
		_, _ = w.Write(right)
		trailers("grpc-status", "0")
	case "no_response":
		grpcStart()
		trailers("grpc-status", "0")
	case "connection_dropped":
		grpcStart()
		_, _ = w.Write(right[:len(right)/2])
		flush()
		_ = r.Context().Value(connKey{}).(net.Conn).Close()
	case "silent_server":
		<-r.Context().Done()
	default:
		w.WriteHeader(http.StatusTeapot)
	}
}

// wireOutcome is what grpc-go 1.85 makes of a wire case's answer when it
// differs from the contract: the case then fails with this message.
var wireOutcome = map[string]string{
	// grpc-go ends a unary call that got two response messages or none with
	// INTERNAL (stream.go), where statuscodes.md says UNIMPLEMENTED.
	"two_responses": `UnaryCall(x-interop-case: two_responses) ended with status Internal "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message", want status Unimplemented`,
	"no_response":   `UnaryCall(x-interop-case: no_response) ended with status Internal "cardinality violation: received no response message from non-server-streaming RPC", want status Unimplemented`,
}

// TestWireCasesAgainstFake plays every wire case against fakeBadServer:
// each passes (grpc-go returned the contract's code) but where grpc-go is
// known to differ, where it fails with what grpc-go returned. Each call
// carries its case's name, each case makes a connection of its own, and
// closes it.
func TestWireCasesAgainstFake(t *testing.T) {
	f := startFakeBadServer(t, answerAsCase)
	c := f.clients(t)
	for _, wc := range WireCases {
		t.Run(wc.Name, func(t *testing.T) {
			before, _ := f.connections()
			res := RunCase(t.Context(), c, caseNamed(t, wc.Name))
			if want, differs := wireOutcome[wc.Name]; differs {
				if res.Outcome != OutcomeFailed || res.Message != want || !maps.Equal(res.Checks, map[string]string{"status_code": CheckFailed}) {
					t.Errorf("%s = %s %q %v\nwant failed %q", wc.Name, res.Outcome, res.Message, res.Checks, want)
				}
			} else if res.Outcome != OutcomePassed || !maps.Equal(res.Checks, map[string]string{"status_code": CheckPassed}) {
				t.Errorf("%s = %s %q %v, want passed (status %s)", wc.Name, res.Outcome, res.Message, res.Checks, wc.Code)
			}
			if after, _ := f.connections(); after != before+1 {
				t.Errorf("%s made %d connections, want 1 (a channel of its own)", wc.Name, after-before)
			}
			f.mu.Lock()
			seen := slices.Clone(f.seen)
			f.mu.Unlock()
			if len(seen) == 0 || seen[len(seen)-1] != wc.Name {
				t.Errorf("%s: the server saw %s %q, want the case's name", wc.Name, CaseHeader, seen)
			}
			if wc.Name == "silent_server" && (res.DurationMS < 1000 || res.DurationMS > 3000) {
				t.Errorf("silent_server took %v ms, want its 1 s deadline", res.DurationMS)
			}
		})
	}
	// Every case closed its channel: no connection is left open.
	deadline := time.Now().Add(5 * time.Second)
	for accepted, closed := f.connections(); accepted != closed; accepted, closed = f.connections() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections accepted, %d closed; want every case's channel closed", accepted, closed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWireCasesCanFail plays every wire case against a server that answers
// every call rightly: each fails, saying it got OK.
func TestWireCasesCanFail(t *testing.T) {
	f := startFakeBadServer(t, answerRight)
	c := f.clients(t)
	for _, wc := range WireCases {
		res := RunCase(t.Context(), c, caseNamed(t, wc.Name))
		want := `UnaryCall(x-interop-case: ` + wc.Name + `) ended with status OK "", want status ` + wc.Code.String()
		if res.Outcome != OutcomeFailed || res.Message != want || !maps.Equal(res.Checks, map[string]string{"status_code": CheckFailed}) {
			t.Errorf("%s against a right server = %s %q %v, want failed %q", wc.Name, res.Outcome, res.Message, res.Checks, want)
		}
	}
}

// http2NegativeNames are the names of the http2_negative cases.
func http2NegativeNames() []string {
	var out []string
	for _, c := range Cases {
		if c.Group == GroupHTTP2Negative {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestHTTP2NegativeCasesAgainstFake plays the http2_negative cases but
// goaway against fakeBadServer: they pass, max_streams never had two
// streams answered at once, and every call carried its case's name.
func TestHTTP2NegativeCasesAgainstFake(t *testing.T) {
	f := startFakeBadServer(t, answerAsCase)
	c := f.clients(t)
	for _, name := range http2NegativeNames() {
		if name == "goaway" {
			continue // TestGoaway
		}
		f.mu.Lock()
		f.seen = nil
		f.mu.Unlock()
		res := RunCase(t.Context(), c, caseNamed(t, name))
		if want := allPassed(caseNamed(t, name).CheckNames); res.Outcome != OutcomePassed || !maps.Equal(res.Checks, want) {
			t.Errorf("%s = %s %q %v, want passed %v", name, res.Outcome, res.Message, res.Checks, want)
		}
		calls := 1
		if name == "max_streams" {
			calls = 1 + maxStreamsAtOnce
		}
		f.mu.Lock()
		seen := slices.Clone(f.seen)
		f.mu.Unlock()
		if want := slices.Repeat([]string{name}, calls); !slices.Equal(seen, want) {
			t.Errorf("%s: the server saw %s %q, want %q", name, CaseHeader, seen, want)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxActive != 1 {
		t.Errorf("the server answered %d streams at once, want 1 (its limit)", f.maxActive)
	}
}

// TestHTTP2NegativeCasesCanFail plays them against servers that get them
// wrong: the rst cases against one that answers rightly, the others
// against one that answers a wrong payload.
func TestHTTP2NegativeCasesCanFail(t *testing.T) {
	right := startFakeBadServer(t, answerRight).clients(t)
	for _, name := range []string{"rst_after_header", "rst_during_data", "rst_after_data"} {
		res := RunCase(t.Context(), right, caseNamed(t, name))
		want := `UnaryCall(x-interop-case: ` + name + `) ended with status OK "", want any status but OK (the server reset the stream)`
		if res.Outcome != OutcomeFailed || res.Message != want || !maps.Equal(res.Checks, map[string]string{"not_ok": CheckFailed}) {
			t.Errorf("%s against a right server = %s %q %v, want failed %q", name, res.Outcome, res.Message, res.Checks, want)
		}
	}
	wrong := startFakeBadServer(t, answerWrong).clients(t)
	for name, failed := range map[string][]string{
		"goaway":                    {"first.payload_size", "second.payload_size"},
		"ping":                      {"payload_size"},
		"max_streams":               {"payload_size", "payload_type"},
		"data_frame_padding":        {"payload_size", "payload_body"},
		"no_df_padding_sanity_test": {"payload_size", "payload_body"},
	} {
		res := RunCase(t.Context(), wrong, caseNamed(t, name))
		want := allPassed(caseNamed(t, name).CheckNames)
		for _, n := range failed {
			want[n] = CheckFailed
		}
		if res.Outcome != OutcomeFailed || !maps.Equal(res.Checks, want) || !strings.Contains(res.Message, "payload size = 314158, want 314159") {
			t.Errorf("%s against a wrong server = %s %q %v, want failed %v", name, res.Outcome, res.Message, res.Checks, want)
		}
	}
}

// caseRecorder records the x-interop-case of every call a grpc-go server got.
type caseRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *caseRecorder) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.seen = append(r.seen, strings.Join(md.Get(CaseHeader), ","))
	r.mu.Unlock()
	return handler(ctx, req)
}

// TestGoaway plays goaway against a grpc-go server that sends GOAWAY once
// a connection is 300 ms old: the second call, a second after the first,
// goes over a new connection and both pass.
func TestGoaway(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &countingListener{Listener: inner}
	rec := &caseRecorder{}
	s := NewServer(DefaultGreeting,
		grpc.UnaryInterceptor(rec.intercept),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 300 * time.Millisecond, MaxConnectionAgeGrace: 10 * time.Second}))
	c, _ := serveOn(t, s, lis)
	res := RunCase(t.Context(), c, caseNamed(t, "goaway"))
	if want := allPassed(caseNamed(t, "goaway").CheckNames); res.Outcome != OutcomePassed || !maps.Equal(res.Checks, want) {
		t.Errorf("goaway = %s %q %v, want passed %v", res.Outcome, res.Message, res.Checks, want)
	}
	if res.DurationMS < 1000 {
		t.Errorf("goaway took %v ms, want its two calls a second apart", res.DurationMS)
	}
	if n := lis.accepted.Load(); n != 2 {
		t.Errorf("goaway made %d connections, want 2 (the second call on a new one after GOAWAY)", n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if want := []string{"goaway", "goaway"}; !slices.Equal(rec.seen, want) {
		t.Errorf("the server saw %s %q, want %q", CaseHeader, rec.seen, want)
	}
}

// TestBadServerCasesNeedDial checks that a case against the bad server
// without a way to make its channel fails, saying so.
func TestBadServerCasesNeedDial(t *testing.T) {
	res := RunCase(t.Context(), &Clients{}, caseNamed(t, "http_404"))
	if res.Outcome != OutcomeFailed || res.Message != "http_404: no way to make a channel of its own (Clients.Dial is nil)" {
		t.Errorf("http_404 without Clients.Dial = %s %q, want failed", res.Outcome, res.Message)
	}
	dialErr := errors.New("no channel today")
	res = RunCase(t.Context(), &Clients{Dial: func() (*grpc.ClientConn, error) { return nil, dialErr }}, caseNamed(t, "goaway"))
	if res.Outcome != OutcomeFailed || res.Message != "goaway: new channel: no channel today" {
		t.Errorf("goaway with a failing Dial = %s %q, want failed", res.Outcome, res.Message)
	}
}

// TestBadServerMessagesSayWhatCameBack checks the message of a wire case
// that got another code than it wanted: the call, the code and message that
// came back, and the code wanted.
func TestBadServerMessagesSayWhatCameBack(t *testing.T) {
	f := startFakeBadServer(t, answerAsCase)
	c := f.clients(t)
	// http_404 answered, but the case wants UNAVAILABLE.
	tc := Case{Name: "http_404", Group: GroupWire, CheckNames: []string{"status_code"}, Run: onCaseChannel("http_404", func(ctx context.Context, ch *CaseChannel, ck *Checks) {
		DoWireCase(ctx, ch, ck, WireCase{Name: "http_404", Code: 14, Timeout: RPCTimeout})
	})}
	res := RunCase(t.Context(), c, tc)
	want := regexp.MustCompile(`^UnaryCall\(x-interop-case: http_404\) ended with status Unimplemented ".*404.*", want status Unavailable$`)
	if res.Outcome != OutcomeFailed || !want.MatchString(res.Message) {
		t.Errorf("http_404 wanting UNAVAILABLE = %s %q, want failed matching %s", res.Outcome, res.Message, want)
	}
}
