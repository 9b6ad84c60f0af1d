package interop

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// serveLoad serves s on a loopback port until the test ends and returns
// its listener.
func serveLoad(t *testing.T, s *grpc.Server) *countingListener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: lis}
	go func() { _ = s.Serve(cl) }()
	t.Cleanup(s.Stop)
	return cl
}

// loadLine plays cfg against target over plaintext and returns the load
// line as printed, parsed back. It checks that ready was called once,
// before the load's line existed, and that the run took about the
// warm-up and the window.
func loadLine(t *testing.T, target string, cfg LoadConfig) (LoadResult, map[string]any) {
	t.Helper()
	dial := func() (*grpc.ClientConn, error) {
		return grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	readies := 0
	began := time.Now()
	res, err := RunLoad(t.Context(), cfg, dial, func() error { readies++; return nil })
	took := time.Since(began)
	if err != nil {
		t.Fatalf("RunLoad(%+v) = %v", cfg, err)
	}
	if readies != 1 {
		t.Errorf("ready called %d times, want once", readies)
	}
	if least := cfg.Warmup + cfg.Duration; took < least || took > least+5*time.Second {
		t.Errorf("RunLoad took %s, want a little more than warm-up + duration = %s", took, least)
	}
	var b strings.Builder
	if err := WriteLine(&b, res); err != nil {
		t.Fatal(err)
	}
	line := b.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("load line %q is not one line", line)
	}
	var back LoadResult
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &back); err != nil {
		t.Fatalf("load line %s: %v", line, err)
	}
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		t.Fatalf("load line %s: %v", line, err)
	}
	t.Logf("%s", strings.TrimSpace(line))
	return back, fields
}

// checkLoadEcho checks the fields that echo the flags.
func checkLoadEcho(t *testing.T, res LoadResult, cfg LoadConfig) {
	t.Helper()
	if res.Event != "load" || res.Load != cfg.Kind || res.Concurrency != cfg.Concurrency || res.Connections != cfg.Connections ||
		res.WarmupMS != cfg.Warmup.Milliseconds() || res.DurationMS != cfg.Duration.Milliseconds() || res.PayloadBytes != cfg.PayloadBytes {
		t.Errorf("load line %+v does not echo the load %+v", res, cfg)
	}
}

func testLoadConfig(kind string) LoadConfig {
	return LoadConfig{Kind: kind, Concurrency: 4, Connections: 2, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond, PayloadBytes: 100}
}

// TestLoadAgainstOwnServer plays both loads against the Go server: every
// call succeeds, on exactly the connections asked for, and the figures
// agree with each other.
func TestLoadAgainstOwnServer(t *testing.T) {
	for _, kind := range []string{LoadUnary, LoadPingPong} {
		t.Run(kind, func(t *testing.T) {
			lis := serveLoad(t, NewServer(DefaultGreeting))
			before := runtime.NumGoroutine()
			cfg := testLoadConfig(kind)
			res, fields := loadLine(t, lis.Addr().String(), cfg)
			checkLoadEcho(t, res, cfg)
			if res.Count == 0 || res.Errors != 0 || res.FirstError != "" {
				t.Errorf("count %d, errors %d, first_error %q; want successes only", res.Count, res.Errors, res.FirstError)
			}
			if got := lis.accepted.Load(); got != int64(cfg.Connections) {
				t.Errorf("the server accepted %d connections, want %d", got, cfg.Connections)
			}
			if math.Abs(float64(res.ElapsedMS)-300) > 0.1 {
				t.Errorf("elapsed_ms = %v, want the window, 300", res.ElapsedMS)
			}
			if want := float64(res.Count) / float64(res.ElapsedMS) * 1000; math.Abs(float64(res.QPS)-want) > 0.05+want*1e-6 {
				t.Errorf("qps = %v, want count / elapsed_ms * 1000 = %v", res.QPS, want)
			}
			l := res.LatencyUS
			if l == nil {
				t.Fatalf("latency_us is null with count %d", res.Count)
			}
			if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("latency_us = %+v, want 0 < p50 <= p90 <= p99 <= max", *l)
			}
			if l.Max > 300_000+OneDecimal(RPCTimeout.Microseconds()) {
				t.Errorf("latency_us max = %v, more than a call can last", l.Max)
			}
			for _, k := range []string{"event", "load", "concurrency", "connections", "warmup_ms", "duration_ms", "payload_bytes",
				"count", "errors", "elapsed_ms", "qps", "latency_us", "first_error"} {
				if _, ok := fields[k]; !ok {
					t.Errorf("load line has no %q", k)
				}
			}
			if len(fields) != 13 {
				t.Errorf("load line has %d fields, want 13: %v", len(fields), fields)
			}
			// Every goroutine of the load (workers, calls, channels) is gone.
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d goroutines after the load, %d before it", n, before)
			}
		})
	}
}

// TestLoadWithoutServer plays both loads against a port where nothing
// listens: only errors, the first one the status grpc-go gave, and no
// latencies (null in the line).
func TestLoadWithoutServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := lis.Addr().String()
	_ = lis.Close()
	for _, kind := range []string{LoadUnary, LoadPingPong} {
		t.Run(kind, func(t *testing.T) {
			cfg := testLoadConfig(kind)
			res, fields := loadLine(t, target, cfg)
			checkLoadEcho(t, res, cfg)
			if res.Count != 0 || res.Errors == 0 || !strings.HasPrefix(res.FirstError, "Unavailable: ") {
				t.Errorf("count %d, errors %d, first_error %q; want 0, some, Unavailable: ...", res.Count, res.Errors, res.FirstError)
			}
			if v, ok := fields["latency_us"]; !ok || v != nil {
				t.Errorf("latency_us = %v (present %t), want null", v, ok)
			}
			if res.QPS != 0 {
				t.Errorf("qps = %v, want 0", res.QPS)
			}
		})
	}
}

// shortLoadServer answers with one byte less than asked, on both methods.
type shortLoadServer struct {
	shortServer
}

func (*shortLoadServer) FullDuplexCall(stream testingpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		size := int(req.GetResponseParameters()[0].GetSize()) - 1
		if err := stream.Send(&testingpb.StreamingOutputCallResponse{Payload: newPayload(size)}); err != nil {
			return err
		}
	}
}

// TestLoadWrongPayload: a response of the wrong size is an error, and says so.
func TestLoadWrongPayload(t *testing.T) {
	s := grpc.NewServer()
	testingpb.RegisterTestServiceServer(s, &shortLoadServer{})
	lis := serveLoad(t, s)
	for kind, want := range map[string]string{
		LoadUnary:    "UnaryCall response payload has 99 bytes, want 100",
		LoadPingPong: "FullDuplexCall response payload has 99 bytes, want 100",
	} {
		t.Run(kind, func(t *testing.T) {
			res, _ := loadLine(t, lis.Addr().String(), testLoadConfig(kind))
			if res.Count != 0 || res.Errors == 0 || res.FirstError != want || res.LatencyUS != nil {
				t.Errorf("count %d, errors %d, first_error %q, latency_us %v; want 0, some, %q, null", res.Count, res.Errors, res.FirstError, res.LatencyUS, want)
			}
		})
	}
}

// briefStreamServer ends every FullDuplexCall stream with ABORTED after
// its second round trip.
type briefStreamServer struct {
	TestServer
	streams atomic.Int32
}

func (s *briefStreamServer) FullDuplexCall(stream testingpb.TestService_FullDuplexCallServer) error {
	s.streams.Add(1)
	for range 2 {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		if err := stream.Send(&testingpb.StreamingOutputCallResponse{Payload: newPayload(int(req.GetResponseParameters()[0].GetSize()))}); err != nil {
			return err
		}
	}
	return status.Error(codes.Aborted, "enough")
}

// TestLoadPingPongReopensStreams: a worker whose stream failed counts one
// error and goes on with a new stream.
func TestLoadPingPongReopensStreams(t *testing.T) {
	srv := &briefStreamServer{}
	s := grpc.NewServer()
	testingpb.RegisterTestServiceServer(s, srv)
	lis := serveLoad(t, s)
	res, _ := loadLine(t, lis.Addr().String(), testLoadConfig(LoadPingPong))
	if res.Count == 0 || res.Errors == 0 || res.FirstError != "Aborted: enough" || res.LatencyUS == nil {
		t.Errorf("count %d, errors %d, first_error %q; want successes, errors, \"Aborted: enough\"", res.Count, res.Errors, res.FirstError)
	}
	// Two round trips per stream, then one error: about twice as many
	// successes as errors (streams cut by the window's edges aside).
	if res.Count < res.Errors || res.Count > 2*res.Errors+2*4 {
		t.Errorf("count %d, errors %d; want about two successes per error", res.Count, res.Errors)
	}
	if got := srv.streams.Load(); got < int32(res.Errors) {
		t.Errorf("%d streams opened, fewer than the %d errors", got, res.Errors)
	}
}

func TestLoadConfigValidate(t *testing.T) {
	ok := DefaultLoadConfig()
	ok.Kind = LoadUnary
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with --load unary: %v", err)
	}
	for _, tt := range []struct {
		change func(*LoadConfig)
		flag   string
	}{
		{func(c *LoadConfig) { c.Kind = "" }, "--load"},
		{func(c *LoadConfig) { c.Kind = "streaming" }, "--load"},
		{func(c *LoadConfig) { c.Concurrency = 0 }, "--load_concurrency"},
		{func(c *LoadConfig) { c.Concurrency = -1 }, "--load_concurrency"},
		{func(c *LoadConfig) { c.Connections = 0 }, "--load_connections"},
		{func(c *LoadConfig) { c.Connections = 51 }, "--load_connections"},
		{func(c *LoadConfig) { c.Duration = 0 }, "--load_duration_ms"},
		{func(c *LoadConfig) { c.Warmup = -time.Millisecond }, "--load_warmup_ms"},
		{func(c *LoadConfig) { c.PayloadBytes = MaxLoadPayload + 1 }, "--load_payload_bytes"},
		{func(c *LoadConfig) { c.PayloadBytes = -1 }, "--load_payload_bytes"},
	} {
		c := ok
		tt.change(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tt.flag+" ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("Validate(%+v) = %v, want one line about %s", c, err, tt.flag)
		}
	}
	for _, change := range []func(*LoadConfig){
		func(c *LoadConfig) { c.Kind = LoadPingPong },
		func(c *LoadConfig) { c.Connections = 50 },
		func(c *LoadConfig) { c.Warmup = 0 },
		func(c *LoadConfig) { c.PayloadBytes = 0 },
		func(c *LoadConfig) { c.PayloadBytes = MaxLoadPayload },
	} {
		c := ok
		change(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c, err)
		}
	}
}

// TestLatencySummary checks the nearest-rank percentiles (rank ceil(p/100
// × n) of the sorted latencies) and their printing in microseconds with
// one decimal.
func TestLatencySummary(t *testing.T) {
	// 1..100 µs plus 0.24 µs, shuffled: rank 50, 90, 99 and the largest.
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1)*time.Microsecond + 240
	}
	rand.Shuffle(len(hundred), func(i, j int) { hundred[i], hundred[j] = hundred[j], hundred[i] })
	// 10 latencies: p90 is rank 9, p99 rank 10.
	ten := []time.Duration{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	for i := range ten {
		ten[i] *= time.Millisecond
	}
	for _, tt := range []struct {
		latencies []time.Duration
		want      string
	}{
		{hundred, `{"p50":50.2,"p90":90.2,"p99":99.2,"max":100.2}`},
		{ten, `{"p50":5000.0,"p90":9000.0,"p99":10000.0,"max":10000.0}`},
		{[]time.Duration{1500 * time.Nanosecond}, `{"p50":1.5,"p90":1.5,"p99":1.5,"max":1.5}`},
		{[]time.Duration{3, 1, 2}, `{"p50":0.0,"p90":0.0,"p99":0.0,"max":0.0}`},
		{[]time.Duration{1260, 1240, 1960}, `{"p50":1.3,"p90":2.0,"p99":2.0,"max":2.0}`},
	} {
		b, err := json.Marshal(latencySummary(tt.latencies))
		if err != nil || string(b) != tt.want {
			t.Errorf("latencySummary = %s, %v; want %s", b, err, tt.want)
		}
	}
}

// TestLoadResultMerge checks how the workers' tallies are merged: counts
// summed, the earliest first error, qps over the window.
func TestLoadResultMerge(t *testing.T) {
	t0 := time.Now()
	cfg := LoadConfig{Kind: LoadUnary, Concurrency: 3, Connections: 1, Warmup: time.Second, Duration: 2 * time.Second, PayloadBytes: 7}
	tallies := []*loadTally{
		{latencies: []time.Duration{3 * time.Millisecond, time.Millisecond}, errors: 1, firstError: "late", firstErrorAt: t0.Add(2 * time.Second)},
		{latencies: []time.Duration{2 * time.Millisecond}, errors: 2, firstError: "early", firstErrorAt: t0.Add(time.Second)},
		{},
	}
	res := loadResult(cfg, 2*time.Second+400*time.Microsecond, tallies)
	var b strings.Builder
	if err := WriteLine(&b, res); err != nil {
		t.Fatal(err)
	}
	want := `{"event":"load","load":"unary","concurrency":3,"connections":1,"warmup_ms":1000,"duration_ms":2000,"payload_bytes":7,` +
		`"count":3,"errors":3,"elapsed_ms":2000.4,"qps":1.5,"latency_us":{"p50":2000.0,"p90":3000.0,"p99":3000.0,"max":3000.0},"first_error":"early"}` + "\n"
	if b.String() != want {
		t.Errorf("load line\n%s\nwant\n%s", b.String(), want)
	}
	res = loadResult(cfg, 2*time.Second, []*loadTally{{}, {}})
	b.Reset()
	_ = WriteLine(&b, res)
	if !strings.Contains(b.String(), `"count":0,"errors":0,"elapsed_ms":2000.0,"qps":0.0,"latency_us":null,"first_error":""}`) {
		t.Errorf("empty load line %s, want count 0, latency_us null, first_error empty", b.String())
	}
}

// silentServer never answers: its calls and streams end only when the
// client gives up on them.
type silentServer struct {
	TestServer
}

func (*silentServer) UnaryCall(ctx context.Context, _ *testingpb.SimpleRequest) (*testingpb.SimpleResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (*silentServer) FullDuplexCall(stream testingpb.TestService_FullDuplexCallServer) error {
	<-stream.Context().Done()
	return stream.Context().Err()
}

// TestLoadWindDownIsBounded: what is still in flight after the window is
// waited for at most the wind-down (shortened here), is not counted, and
// leaves no goroutine behind.
func TestLoadWindDownIsBounded(t *testing.T) {
	defer func(d time.Duration) { loadWindDown = d }(loadWindDown)
	loadWindDown = 300 * time.Millisecond
	s := grpc.NewServer()
	testingpb.RegisterTestServiceServer(s, &silentServer{})
	lis := serveLoad(t, s)
	for _, kind := range []string{LoadUnary, LoadPingPong} {
		t.Run(kind, func(t *testing.T) {
			before := runtime.NumGoroutine()
			cfg := testLoadConfig(kind)
			began := time.Now()
			res, fields := loadLine(t, lis.Addr().String(), cfg)
			took := time.Since(began)
			if limit := cfg.Warmup + cfg.Duration + loadWindDown + time.Second; took > limit {
				t.Errorf("RunLoad took %s, want at most %s", took, limit)
			}
			if res.Count != 0 || res.Errors != 0 || res.FirstError != "" || fields["latency_us"] != nil {
				t.Errorf("count %d, errors %d, first_error %q, latency_us %v; want nothing counted", res.Count, res.Errors, res.FirstError, fields["latency_us"])
			}
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d goroutines after the load, %d before it", n, before)
			}
		})
	}
}
