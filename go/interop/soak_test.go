package interop

import (
	"context"
	"fmt"
	"maps"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

func TestNearestRank(t *testing.T) {
	seq := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	for _, tt := range []struct {
		sorted []int
		p      int
		want   int
	}{
		{[]int{7}, 50, 7}, {[]int{7}, 99, 7},
		{[]int{10, 20, 30}, 50, 20}, // rank ceil(1.5) = 2
		{[]int{10, 20, 30}, 90, 30}, // rank ceil(2.7) = 3
		{[]int{10, 20}, 50, 10},     // rank ceil(1.0) = 1, not 2
		{seq(10), 50, 5}, {seq(10), 90, 9}, {seq(10), 99, 10}, {seq(10), 100, 10},
		{seq(100), 50, 50}, {seq(100), 90, 90}, {seq(100), 99, 99},
		{seq(1000), 99, 990}, {seq(7), 50, 4}, {seq(7), 90, 7},
		{seq(3), 1, 1},
	} {
		if got := nearestRank(tt.sorted, tt.p); got != tt.want {
			t.Errorf("nearestRank(%v, %d) = %d, want %d", tt.sorted, tt.p, got, tt.want)
		}
	}
}

// TestSoakMetricsLine checks the metrics object as printed: its keys in
// order, milliseconds with three decimals, nearest-rank percentiles of the
// successful iterations only, and no latency keys when none succeeded.
func TestSoakMetricsLine(t *testing.T) {
	tally := &soakTally{run: 12, failures: []soakFailure{{1, "x"}, {2, "y"}}}
	// 10 successes, given unsorted: 1.0000004 ms .. 10.0000004 ms, but the
	// third, which rounds up: 3.234567 ms -> 3.235.
	for i := 10; i >= 1; i-- {
		d := time.Duration(i)*time.Millisecond + 400
		if i == 3 {
			d = 3234567
		}
		tally.latencies = append(tally.latencies, d)
	}
	var b strings.Builder
	r := Result{Event: "result", Case: "rpc_soak", Outcome: OutcomeFailed, Message: "m", Metrics: tally.metrics()}
	if err := WriteResult(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `{"event":"result","case":"rpc_soak","outcome":"failed","duration_ms":0,"message":"m","checks":{},"not_checked":{},` +
		`"metrics":{"iterations":12,"failures":2,"latency_ms_p50":5,"latency_ms_p90":9,"latency_ms_p99":10,"latency_ms_max":10}}` + "\n"
	if b.String() != want {
		t.Errorf("WriteResult =\n%s\nwant\n%s", b.String(), want)
	}
	small := (&soakTally{run: 2, latencies: []time.Duration{3234567, 1500 * time.Microsecond}}).metrics()
	if *small.P50 != 1.5 || *small.P90 != 3.235 || *small.Max != 3.235 {
		t.Errorf("metrics of [3.234567 ms, 1.5 ms] = p50 %v, p90 %v, max %v; want 1.5, 3.235, 3.235", *small.P50, *small.P90, *small.Max)
	}

	b.Reset()
	r.Metrics = (&soakTally{run: 3, failures: []soakFailure{{1, "x"}, {2, "y"}, {3, "z"}}}).metrics()
	if err := WriteResult(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(b.String(), `"metrics":{"iterations":3,"failures":3}}`+"\n") {
		t.Errorf("WriteResult with no successful iteration = %s, want metrics without latencies", b.String())
	}
}

// runSoakCase runs the case name with cfg as the soak flags, run by RunCase
// on c (a copy, so that tests do not share a configuration).
func runSoakCase(t *testing.T, c *Clients, name string, cfg SoakConfig) Result {
	t.Helper()
	cc := *c
	cc.Soak = cfg
	got := make(chan Result, 1)
	go func() { got <- RunCase(t.Context(), &cc, caseNamed(t, name)) }()
	limit := cfg.budget() + CallGrace + 5*time.Second
	select {
	case res := <-got:
		return res
	case <-time.After(limit):
		t.Fatalf("RunCase(%s) did not return within %s", name, limit)
		return Result{}
	}
}

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return conn, err
}

// TestSoakAgainstOwnServer runs both soak cases with several workers: they
// pass, with their checks and metrics, and channel_soak makes a connection
// per iteration while rpc_soak reuses the client's channel.
func TestSoakAgainstOwnServer(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &countingListener{Listener: inner}
	c, _ := serveOn(t, NewServer(DefaultGreeting), lis)
	cfg := DefaultSoakConfig()
	cfg.Iterations, cfg.Threads, cfg.MinTimeBetweenRPCs = 6, 3, 20*time.Millisecond
	wantChecks := map[string]string{"completed": CheckPassed, "failures": CheckPassed}
	for _, tt := range []struct {
		name             string
		connections      int64
		wantAtLeastTaken time.Duration
	}{
		// One connection: the client's channel. Each worker runs 2 iterations,
		// the second 20 ms after the first started.
		{"rpc_soak", 1, 20 * time.Millisecond},
		{"channel_soak", 6, 20 * time.Millisecond},
	} {
		before := lis.accepted.Load()
		res := runSoakCase(t, c, tt.name, cfg)
		if res.Outcome != OutcomePassed || res.Message != "" || !maps.Equal(res.Checks, wantChecks) {
			t.Errorf("%s = %s %q %v, want passed, completed and failures passed", tt.name, res.Outcome, res.Message, res.Checks)
		}
		m := res.Metrics
		if m == nil || m.Iterations != 6 || m.Failures != 0 || m.P50 == nil || m.P90 == nil || m.P99 == nil || m.Max == nil {
			t.Fatalf("%s metrics = %+v, want 6 iterations, 0 failures and the latencies", tt.name, m)
		}
		if !(0 < *m.P50 && *m.P50 <= *m.P90 && *m.P90 <= *m.P99 && *m.P99 <= *m.Max && *m.Max < 1000) {
			t.Errorf("%s latencies p50 %v, p90 %v, p99 %v, max %v: want 0 < p50 <= p90 <= p99 <= max < 1000", tt.name, *m.P50, *m.P90, *m.P99, *m.Max)
		}
		if res.DurationMS < float64(tt.wantAtLeastTaken.Milliseconds()) {
			t.Errorf("%s took %v ms, want at least %v (min time between RPCs)", tt.name, res.DurationMS, tt.wantAtLeastTaken)
		}
		if got := lis.accepted.Load() - before; got != tt.connections {
			t.Errorf("%s made %d connections, want %d", tt.name, got, tt.connections)
		}
	}
}

// flakyServer fails every other UnaryCall, the 2nd, the 4th, ...
type flakyServer struct {
	TestServer
	calls atomic.Int64
}

func (s *flakyServer) UnaryCall(ctx context.Context, req *testingpb.SimpleRequest) (*testingpb.SimpleResponse, error) {
	if n := s.calls.Add(1); n%2 == 0 {
		return nil, status.Errorf(codes.Internal, "flaky call %d", n)
	}
	return s.TestServer.UnaryCall(ctx, req)
}

// TestSoakCountsFailures runs the soak cases against a server that fails
// every other call: failures fails with the count and the first reasons,
// completed passes, and with enough failures allowed the case passes.
func TestSoakCountsFailures(t *testing.T) {
	for _, name := range []string{"rpc_soak", "channel_soak"} {
		t.Run(name, func(t *testing.T) {
			s := grpc.NewServer()
			testingpb.RegisterTestServiceServer(s, &flakyServer{})
			c, _ := startServer(t, s)
			cfg := DefaultSoakConfig()
			cfg.Iterations = 14 // one worker: iterations 2, 4, ..., 14 fail
			res := runSoakCase(t, c, name, cfg)
			want := name + ": 7 of 14 iterations failed, want at most 0: " +
				`iteration 2: UnaryCall ended with status Internal "flaky call 2"; ` +
				`iteration 4: UnaryCall ended with status Internal "flaky call 4"; ` +
				`iteration 6: UnaryCall ended with status Internal "flaky call 6"; ` +
				`iteration 8: UnaryCall ended with status Internal "flaky call 8"; ` +
				`iteration 10: UnaryCall ended with status Internal "flaky call 10"; and 2 more`
			wantChecks := map[string]string{"completed": CheckPassed, "failures": CheckFailed}
			if res.Outcome != OutcomeFailed || res.Message != want || !maps.Equal(res.Checks, wantChecks) {
				t.Errorf("%s against a flaky server = %s %q %v\nwant failed %q %v", name, res.Outcome, res.Message, res.Checks, want, wantChecks)
			}
			if m := res.Metrics; m == nil || m.Iterations != 14 || m.Failures != 7 || m.P50 == nil {
				t.Errorf("%s against a flaky server: metrics = %+v, want 14 iterations, 7 failures, latencies", name, m)
			}

			cfg.MaxFailures = 7
			if res := runSoakCase(t, c, name, cfg); res.Outcome != OutcomePassed || res.Metrics == nil || res.Metrics.Failures != 7 {
				t.Errorf("%s against a flaky server, 7 failures allowed = %s %q %+v, want passed with 7 failures", name, res.Outcome, res.Message, res.Metrics)
			}
		})
	}
}

// fakeTest is a TestServiceClient whose UnaryCall is unary; the other
// methods are not called by the soak cases.
type fakeTest struct {
	testingpb.TestServiceClient
	unary func(ctx context.Context) (*testingpb.SimpleResponse, error)
}

func (f fakeTest) UnaryCall(ctx context.Context, _ *testingpb.SimpleRequest, _ ...grpc.CallOption) (*testingpb.SimpleResponse, error) {
	return f.unary(ctx)
}

// TestSoakSlowAndWrongIterations checks the two other ways an iteration
// fails: OK but slower than the maximum (a library that returns after the
// deadline, faked here), and a wrong payload.
func TestSoakSlowAndWrongIterations(t *testing.T) {
	cfg := DefaultSoakConfig()
	cfg.Iterations, cfg.PerIterationMaxLatency = 2, 10*time.Millisecond
	slow := &Clients{Test: fakeTest{unary: func(context.Context) (*testingpb.SimpleResponse, error) {
		time.Sleep(30 * time.Millisecond)
		return &testingpb.SimpleResponse{Payload: newPayload(largeResponseSize)}, nil
	}}}
	res := runSoakCase(t, slow, "rpc_soak", cfg)
	want := regexp.MustCompile(`^rpc_soak: 2 of 2 iterations failed, want at most 0: iteration 1: took 3\d\.\d ms, want at most 10 ms; iteration 2: took 3\d\.\d ms, want at most 10 ms$`)
	if res.Outcome != OutcomeFailed || !want.MatchString(res.Message) || res.Checks["failures"] != CheckFailed {
		t.Errorf("rpc_soak with 30 ms calls, 10 ms allowed = %s %q %v, want failed matching %s", res.Outcome, res.Message, res.Checks, want)
	}
	if m := res.Metrics; m == nil || m.Iterations != 2 || m.Failures != 2 || m.P50 != nil || m.Max != nil {
		t.Errorf("rpc_soak with no successful iteration: metrics = %+v, want 2 iterations, 2 failures, no latencies", m)
	}

	cfg.PerIterationMaxLatency = time.Second
	wrong := &Clients{Test: fakeTest{unary: func(context.Context) (*testingpb.SimpleResponse, error) {
		p := newPayload(largeResponseSize - 1)
		p.Body[3] = 9
		p.Type = testingpb.PayloadType(1)
		return &testingpb.SimpleResponse{Payload: p}, nil
	}}}
	res = runSoakCase(t, wrong, "rpc_soak", cfg)
	reason := "UnaryCall payload size = 314158, want 314159, UnaryCall payload has byte 0x09 at offset 3, want all zero bytes, UnaryCall payload type = 1, want COMPRESSABLE"
	if want := fmt.Sprintf("rpc_soak: 2 of 2 iterations failed, want at most 0: iteration 1: %s; iteration 2: %s", reason, reason); res.Message != want {
		t.Errorf("rpc_soak with wrong payloads: message = %q\nwant %q", res.Message, want)
	}
}

// TestSoakOverallTimeout checks that no iteration starts after the overall
// timeout, that the case then ends at once failing completed, and that the
// minimum time between starts is kept.
func TestSoakOverallTimeout(t *testing.T) {
	var starts []time.Time
	c := &Clients{Test: fakeTest{unary: func(context.Context) (*testingpb.SimpleResponse, error) {
		starts = append(starts, time.Now()) // one worker: no race
		return &testingpb.SimpleResponse{Payload: newPayload(largeResponseSize)}, nil
	}}}
	cfg := DefaultSoakConfig()
	cfg.Iterations, cfg.OverallTimeout, cfg.MinTimeBetweenRPCs = 5, 250*time.Millisecond, 100*time.Millisecond
	res := runSoakCase(t, c, "rpc_soak", cfg)
	want := "rpc_soak: 3 of 5 iterations ran before the overall timeout of 250ms, want all 5"
	wantChecks := map[string]string{"completed": CheckFailed, "failures": CheckPassed}
	if res.Outcome != OutcomeFailed || res.Message != want || !maps.Equal(res.Checks, wantChecks) {
		t.Errorf("rpc_soak, 5 iterations 100 ms apart in 250 ms = %s %q %v, want failed %q %v", res.Outcome, res.Message, res.Checks, want, wantChecks)
	}
	if res.DurationMS > 290 {
		t.Errorf("rpc_soak took %v ms, want it to stop when no iteration may start (about 200 ms)", res.DurationMS)
	}
	if res.Metrics == nil || res.Metrics.Iterations != 3 {
		t.Errorf("rpc_soak metrics = %+v, want 3 iterations", res.Metrics)
	}
	// The fake sees a call a little after its iteration started (a few ms
	// on a loaded machine under -race): allow that much. Starts that ignore
	// the minimum would be about 0 apart (and all 5 would run).
	const slack = 20 * time.Millisecond
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 100*time.Millisecond-slack {
			t.Errorf("iterations %d and %d started %s apart, want at least 100ms", i, i+1, gap)
		}
	}
}

// TestSoakBackstop checks that the backstop gives a soak case its budget
// (overall timeout + per-iteration maximum), not one call's deadline, and
// that a soak whose call the library does not end still ends after it.
func TestSoakBackstop(t *testing.T) {
	shortGrace(t, 100*time.Millisecond)
	fast := &Clients{Test: fakeTest{unary: func(context.Context) (*testingpb.SimpleResponse, error) {
		return &testingpb.SimpleResponse{Payload: newPayload(largeResponseSize)}, nil
	}}}
	// Three iterations 300 ms apart, each with a 50 ms deadline: the case
	// takes 600 ms, far more than a call's deadline plus CallGrace.
	cfg := DefaultSoakConfig()
	cfg.Iterations, cfg.PerIterationMaxLatency, cfg.MinTimeBetweenRPCs, cfg.OverallTimeout = 3, 50*time.Millisecond, 300*time.Millisecond, 2*time.Second
	if res := runSoakCase(t, fast, "rpc_soak", cfg); res.Outcome != OutcomePassed {
		t.Errorf("rpc_soak of 3 iterations 300 ms apart = %s %q, want passed (not given up)", res.Outcome, res.Message)
	}

	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	blocked := &Clients{Test: fakeTest{unary: func(context.Context) (*testingpb.SimpleResponse, error) {
		<-stuck // ignores its deadline, as a broken library would
		return nil, nil
	}}}
	cfg.OverallTimeout, cfg.PerIterationMaxLatency = 200*time.Millisecond, 100*time.Millisecond
	res := runSoakCase(t, blocked, "rpc_soak", cfg)
	message := regexp.MustCompile(`^rpc_soak did not end within \d+ms: grpc-go did not end a call 100ms after its deadline$`)
	if res.Outcome != OutcomeFailed || !message.MatchString(res.Message) || !maps.Equal(res.Checks, map[string]string{"completed": CheckFailed}) {
		t.Errorf("rpc_soak with a call that never ends = %s %q %v, want failed %s, completed failed", res.Outcome, res.Message, res.Checks, message)
	}
	if res.DurationMS < 400 || res.DurationMS > 1500 {
		t.Errorf("rpc_soak with a call that never ends gave up after %v ms, want after 200 + 100 + 100 ms", res.DurationMS)
	}
	if res.Metrics == nil || res.Metrics.Iterations != 0 {
		t.Errorf("rpc_soak with a call that never ends: metrics = %+v, want 0 iterations", res.Metrics)
	}
}

func TestSoakConfigValidate(t *testing.T) {
	if err := DefaultSoakConfig().Validate(); err != nil {
		t.Errorf("DefaultSoakConfig().Validate() = %v", err)
	}
	for _, change := range []func(*SoakConfig){
		func(s *SoakConfig) { s.Iterations = 0 },
		func(s *SoakConfig) { s.Iterations = -1 },
		func(s *SoakConfig) { s.Threads = 0 },
		func(s *SoakConfig) { s.Threads = 3 },
		func(s *SoakConfig) { s.MaxFailures = -1 },
		func(s *SoakConfig) { s.PerIterationMaxLatency = -time.Millisecond },
		func(s *SoakConfig) { s.OverallTimeout = -time.Second },
		func(s *SoakConfig) { s.MinTimeBetweenRPCs = -time.Millisecond },
	} {
		cfg := DefaultSoakConfig()
		change(&cfg)
		if cfg.Validate() == nil {
			t.Errorf("%+v.Validate() = nil, want an error", cfg)
		}
	}
}

// sleepyServer answers UnaryCall after a delay.
type sleepyServer struct {
	TestServer
	delay time.Duration
}

func (s *sleepyServer) UnaryCall(ctx context.Context, req *testingpb.SimpleRequest) (*testingpb.SimpleResponse, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.TestServer.UnaryCall(ctx, req)
}

// TestSoakIterationDeadline checks that each call's deadline is the
// per-iteration maximum, enforced by grpc-go: against a server slower than
// that, the iterations end DEADLINE_EXCEEDED at about the maximum.
func TestSoakIterationDeadline(t *testing.T) {
	s := grpc.NewServer()
	testingpb.RegisterTestServiceServer(s, &sleepyServer{delay: 2 * time.Second})
	c, _ := startServer(t, s)
	cfg := DefaultSoakConfig()
	cfg.Iterations, cfg.PerIterationMaxLatency = 2, 100*time.Millisecond
	for _, name := range []string{"rpc_soak", "channel_soak"} {
		res := runSoakCase(t, c, name, cfg)
		want := regexp.MustCompile(`^` + name + `: 2 of 2 iterations failed, want at most 0: iteration 1: UnaryCall ended with status DeadlineExceeded "[^"]*"; iteration 2: UnaryCall ended with status DeadlineExceeded "[^"]*"$`)
		if res.Outcome != OutcomeFailed || !want.MatchString(res.Message) {
			t.Errorf("%s against a 2 s server, 100 ms allowed = %s %q, want failed matching %s", name, res.Outcome, res.Message, want)
		}
		if res.DurationMS > 1000 {
			t.Errorf("%s took %v ms, want about 2 × 100 ms", name, res.DurationMS)
		}
	}
}

// TestSoakWorkers checks that soak_num_threads workers run at once, each
// its share.
func TestSoakWorkers(t *testing.T) {
	var inFlight, most, calls atomic.Int64
	c := &Clients{Test: fakeTest{unary: func(context.Context) (*testingpb.SimpleResponse, error) {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(30 * time.Millisecond)
		return &testingpb.SimpleResponse{Payload: newPayload(largeResponseSize)}, nil
	}}}
	cfg := DefaultSoakConfig()
	cfg.Iterations, cfg.Threads = 6, 3
	res := runSoakCase(t, c, "rpc_soak", cfg)
	if res.Outcome != OutcomePassed || calls.Load() != 6 || most.Load() != 3 {
		t.Errorf("rpc_soak, 6 iterations on 3 workers = %s %q, %d calls, at most %d at once; want passed, 6 calls, 3 at once",
			res.Outcome, res.Message, calls.Load(), most.Load())
	}
}
