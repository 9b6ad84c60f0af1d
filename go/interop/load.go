package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// The loads of the client's load mode (CONTRACT.md, "Load mode").
const (
	LoadUnary    = "unary"
	LoadPingPong = "ping_pong"
)

// MaxLoadPayload is the largest --load_payload_bytes: 1 MiB.
const MaxLoadPayload = 1 << 20

// loadWindDown is how long, at most, the client waits after the window
// for what is still in flight (and for its streams to end) before it
// reports: the contract's 10 s. A variable so that a test can shorten it.
var loadWindDown = 10 * time.Second

// LoadConfig is what the load flags say.
type LoadConfig struct {
	Kind         string        // --load: LoadUnary or LoadPingPong
	Concurrency  int           // --load_concurrency: workers
	Connections  int           // --load_connections: channels, each its own connection
	Warmup       time.Duration // --load_warmup_ms
	Duration     time.Duration // --load_duration_ms: the measured window
	PayloadBytes int           // --load_payload_bytes: request and response payload size
}

// DefaultLoadConfig is the contract's defaults, with no load chosen.
func DefaultLoadConfig() LoadConfig {
	return LoadConfig{
		Concurrency:  50,
		Connections:  1,
		Warmup:       time.Second,
		Duration:     5 * time.Second,
		PayloadBytes: 100,
	}
}

// Validate returns the bad usage of the load flags as one line, naming
// the flag, or nil.
func (c LoadConfig) Validate() error {
	switch {
	case c.Kind != LoadUnary && c.Kind != LoadPingPong:
		return fmt.Errorf("--load %q is not a load, want %s or %s", c.Kind, LoadUnary, LoadPingPong)
	case c.Concurrency < 1:
		return fmt.Errorf("--load_concurrency = %d, want at least 1", c.Concurrency)
	case c.Connections < 1:
		return fmt.Errorf("--load_connections = %d, want at least 1", c.Connections)
	case c.Connections > c.Concurrency:
		return fmt.Errorf("--load_connections = %d is more than --load_concurrency = %d: a connection without a worker carries nothing", c.Connections, c.Concurrency)
	case c.Warmup < 0:
		return fmt.Errorf("--load_warmup_ms = %d, want at least 0", c.Warmup.Milliseconds())
	case c.Duration < time.Millisecond:
		return fmt.Errorf("--load_duration_ms = %d, want at least 1", c.Duration.Milliseconds())
	case c.PayloadBytes < 0:
		return fmt.Errorf("--load_payload_bytes = %d, want at least 0", c.PayloadBytes)
	case c.PayloadBytes > MaxLoadPayload:
		return fmt.Errorf("--load_payload_bytes = %d, want at most %d (1 MiB)", c.PayloadBytes, MaxLoadPayload)
	}
	return nil
}

// OneDecimal is a number printed in JSON with exactly one decimal
// (2500.0, not 2500).
type OneDecimal float64

// MarshalJSON prints d rounded to one decimal.
func (d OneDecimal) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d), 'f', 1, 64), nil
}

// LoadLatency is the latency_us object of the load line: nearest-rank
// percentiles and the largest, in microseconds.
type LoadLatency struct {
	P50 OneDecimal `json:"p50"`
	P90 OneDecimal `json:"p90"`
	P99 OneDecimal `json:"p99"`
	Max OneDecimal `json:"max"`
}

// LoadResult is the one line the client prints after a load.
type LoadResult struct {
	Event        string       `json:"event"` // "load"
	Load         string       `json:"load"`
	Concurrency  int          `json:"concurrency"`
	Connections  int          `json:"connections"`
	WarmupMS     int64        `json:"warmup_ms"`
	DurationMS   int64        `json:"duration_ms"`
	PayloadBytes int          `json:"payload_bytes"`
	Count        int          `json:"count"`  // successes in the window
	Errors       int          `json:"errors"` // errors in the window
	ElapsedMS    OneDecimal   `json:"elapsed_ms"`
	QPS          OneDecimal   `json:"qps"`
	LatencyUS    *LoadLatency `json:"latency_us"` // nil (null) when Count is 0
	FirstError   string       `json:"first_error"`
}

// loadWindow is the measured window: a call that ends at or after start
// and before end counts.
type loadWindow struct {
	start, end time.Time
}

func (w loadWindow) holds(t time.Time) bool {
	return !t.Before(w.start) && t.Before(w.end)
}

// loadTally is what one worker saw in the window. Each worker owns its
// own, so the hot path takes no lock; they are merged after the run.
type loadTally struct {
	latencies    []time.Duration // of every success in the window
	errors       int
	firstError   string
	firstErrorAt time.Time
}

// tallyCapacity is the first capacity of a worker's latencies: enough
// for a short window without growing, small enough not to matter.
const tallyCapacity = 4096

// fail counts an error that ended at at inside the window; describe says
// what it was, and is only called for the worker's first one.
func (t *loadTally) fail(at time.Time, describe func() string) {
	if t.errors == 0 {
		t.firstError = describe()
		t.firstErrorAt = at
	}
	t.errors++
}

// statusText is a call's status as the load line's first_error gives it:
// "Code: message", the code as grpc-go names it.
func statusText(err error) string {
	st := status.Convert(err)
	return fmt.Sprintf("%s: %s", st.Code(), st.Message())
}

// loadWorker plays the load on one channel until the window has closed.
type loadWorker struct {
	cfg    LoadConfig
	stub   testingpb.TestServiceClient
	window loadWindow
	tally  loadTally
	// Keeps the next worker's fields off the cache line that this one's
	// tally, written on every call, ends on.
	_ [64]byte
}

// RunLoad plays cfg: it makes cfg.Connections channels with dial (each
// grpc.ClientConn its own HTTP/2 connection), calls ready, starts
// cfg.Concurrency workers at once (worker i on channel i mod
// cfg.Connections), measures the window that follows the warm-up, waits
// at most 10 s for what is in flight after it, closes the
// channels and returns the load line. ctx ending stops the load early.
// An error is returned only when a channel cannot be made, ready fails,
// or grpc-go did not end the calls after their deadlines.
func RunLoad(ctx context.Context, cfg LoadConfig, dial func() (*grpc.ClientConn, error), ready func() error) (LoadResult, error) {
	if err := cfg.Validate(); err != nil {
		return LoadResult{}, err
	}
	conns := make([]*grpc.ClientConn, 0, cfg.Connections)
	defer func() {
		for _, cc := range conns {
			_ = cc.Close()
		}
	}()
	for range cfg.Connections {
		cc, err := dial()
		if err != nil {
			return LoadResult{}, fmt.Errorf("channel %d: %w", len(conns)+1, err)
		}
		conns = append(conns, cc)
		cc.Connect() // start connecting now, not at the first call
	}
	if err := ready(); err != nil {
		return LoadResult{}, err
	}

	workers := make([]*loadWorker, cfg.Concurrency)
	for i := range workers {
		workers[i] = &loadWorker{
			cfg:   cfg,
			stub:  testingpb.NewTestServiceClient(conns[i%len(conns)]),
			tally: loadTally{latencies: make([]time.Duration, 0, tallyCapacity)},
		}
	}
	// Every worker waits at the start line, so that all start together at
	// t0; what is written before the line opens, the workers read after.
	startLine := make(chan struct{})
	var base context.Context
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			<-startLine
			// A context of the worker's own: the calls' contexts register
			// with it, so the workers share no context's lock.
			ctx, cancel := context.WithCancel(base)
			defer cancel()
			if cfg.Kind == LoadUnary {
				w.unary(ctx)
			} else {
				w.pingPong(ctx)
			}
		})
	}
	t0 := time.Now()
	window := loadWindow{start: t0.Add(cfg.Warmup)}
	window.end = window.start.Add(cfg.Duration)
	// Every call and stream ends at the latest loadWindDown after the
	// window (a stream opened at t0 has exactly that deadline, and a call
	// started before the window closed ends by RPCTimeout after it): the
	// wind-down's bound.
	base, cancel := context.WithDeadline(ctx, window.end.Add(loadWindDown))
	defer cancel()
	for _, w := range workers {
		w.window = window
	}
	close(startLine)

	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	backstop := time.NewTimer(time.Until(window.end.Add(loadWindDown + CallGrace)))
	defer backstop.Stop()
	select {
	case <-finished:
	case <-backstop.C:
		cancel()
		return LoadResult{}, fmt.Errorf("load workers did not end within %s after the window: grpc-go did not end calls %s after their deadline",
			loadWindDown+CallGrace, CallGrace)
	}

	tallies := make([]*loadTally, len(workers))
	for i, w := range workers {
		tallies[i] = &w.tally
	}
	return loadResult(cfg, window.end.Sub(window.start), tallies), nil
}

// unary makes one UnaryCall after another, each with a deadline of
// RPCTimeout, until the window has closed.
func (w *loadWorker) unary(ctx context.Context) {
	size := w.cfg.PayloadBytes
	// One request for all the worker's calls: grpc-go has marshalled it
	// by the time a call returns.
	req := &testingpb.SimpleRequest{
		ResponseSize: int32(size),
		Payload:      &testingpb.Payload{Body: make([]byte, size)},
	}
	for {
		began := time.Now()
		if !began.Before(w.window.end) {
			return
		}
		callCtx, cancel := context.WithDeadline(ctx, began.Add(RPCTimeout))
		resp, err := w.stub.UnaryCall(callCtx, req)
		ended := time.Now()
		cancel()
		if !w.window.holds(ended) {
			if err != nil && ctx.Err() != nil {
				return // stopped from outside
			}
			continue
		}
		switch got := len(resp.GetPayload().GetBody()); {
		case err != nil:
			w.tally.fail(ended, func() string { return statusText(err) })
			if ctx.Err() != nil {
				return
			}
		case got != size:
			w.tally.fail(ended, func() string {
				return fmt.Sprintf("UnaryCall response payload has %d bytes, want %d", got, size)
			})
		default:
			w.tally.latencies = append(w.tally.latencies, ended.Sub(began))
		}
	}
}

// pingPong holds one FullDuplexCall stream and makes one round trip after
// another on it until the window has closed; a stream that failed counts
// one error and is replaced. Each stream has a deadline of warm-up +
// duration + RPCTimeout. After the window it half-closes the stream and
// reads it to its end.
func (w *loadWorker) pingPong(ctx context.Context) {
	size := w.cfg.PayloadBytes
	req := &testingpb.StreamingOutputCallRequest{
		ResponseParameters: []*testingpb.ResponseParameters{{Size: int32(size)}},
		Payload:            &testingpb.Payload{Body: make([]byte, size)},
	}
	// One response message, reused: RecvMsg resets it.
	resp := new(testingpb.StreamingOutputCallResponse)
	streamTimeout := w.cfg.Warmup + w.cfg.Duration + RPCTimeout
	for time.Now().Before(w.window.end) && ctx.Err() == nil {
		w.stream(ctx, streamTimeout, req, resp)
	}
}

// stream opens one stream and plays round trips on it until it failed
// (counted) or the window closed (then it winds the stream down).
func (w *loadWorker) stream(ctx context.Context, timeout time.Duration, req *testingpb.StreamingOutputCallRequest, resp *testingpb.StreamingOutputCallResponse) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	size := w.cfg.PayloadBytes
	stream, err := w.stub.FullDuplexCall(ctx)
	if err != nil {
		if at := time.Now(); w.window.holds(at) {
			w.tally.fail(at, func() string { return statusText(err) })
		}
		return
	}
	for {
		began := time.Now()
		if !began.Before(w.window.end) {
			windDown(stream, resp)
			return
		}
		err := stream.Send(req)
		if err == nil {
			err = stream.RecvMsg(resp)
		} else if errors.Is(err, io.EOF) {
			// The stream has ended; RecvMsg gives its status.
			err = stream.RecvMsg(resp)
		}
		ended := time.Now()
		inWindow := w.window.holds(ended)
		switch {
		case errors.Is(err, io.EOF):
			// Ended OK, without the response: the stream is over all the same.
			if inWindow {
				w.tally.fail(ended, func() string { return "FullDuplexCall ended with status OK before the response" })
			}
			return
		case err != nil:
			if inWindow {
				w.tally.fail(ended, func() string { return statusText(err) })
			}
			return
		case !inWindow:
		case len(resp.GetPayload().GetBody()) != size:
			got := len(resp.GetPayload().GetBody())
			w.tally.fail(ended, func() string {
				return fmt.Sprintf("FullDuplexCall response payload has %d bytes, want %d", got, size)
			})
		default:
			w.tally.latencies = append(w.tally.latencies, ended.Sub(began))
		}
	}
}

// windDown half-closes stream and reads it to its end (responses still in
// flight, then the status), which the stream's context bounds.
func windDown(stream grpc.BidiStreamingClient[testingpb.StreamingOutputCallRequest, testingpb.StreamingOutputCallResponse], resp *testingpb.StreamingOutputCallResponse) {
	if err := stream.CloseSend(); err != nil {
		return
	}
	for stream.RecvMsg(resp) == nil {
	}
}

// loadResult merges the workers' tallies into the load line; elapsed is
// the window's length.
func loadResult(cfg LoadConfig, elapsed time.Duration, tallies []*loadTally) LoadResult {
	res := LoadResult{
		Event:        "load",
		Load:         cfg.Kind,
		Concurrency:  cfg.Concurrency,
		Connections:  cfg.Connections,
		WarmupMS:     cfg.Warmup.Milliseconds(),
		DurationMS:   cfg.Duration.Milliseconds(),
		PayloadBytes: cfg.PayloadBytes,
		ElapsedMS:    OneDecimal(float64(elapsed) / float64(time.Millisecond)),
	}
	var firstAt time.Time
	for _, t := range tallies {
		res.Count += len(t.latencies)
		res.Errors += t.errors
		if t.errors > 0 && (res.FirstError == "" || t.firstErrorAt.Before(firstAt)) {
			res.FirstError, firstAt = t.firstError, t.firstErrorAt
		}
	}
	if elapsed > 0 {
		res.QPS = OneDecimal(float64(res.Count) / elapsed.Seconds())
	}
	if res.Count > 0 {
		all := make([]time.Duration, 0, res.Count)
		for _, t := range tallies {
			all = append(all, t.latencies...)
		}
		res.LatencyUS = latencySummary(all)
	}
	return res
}

// latencySummary sorts latencies (not empty) and returns their
// nearest-rank p50, p90, p99 and their largest, in microseconds.
func latencySummary(latencies []time.Duration) *LoadLatency {
	slices.Sort(latencies)
	us := func(d time.Duration) OneDecimal { return OneDecimal(float64(d) / float64(time.Microsecond)) }
	return &LoadLatency{
		P50: us(nearestRank(latencies, 50)),
		P90: us(nearestRank(latencies, 90)),
		P99: us(nearestRank(latencies, 99)),
		Max: us(latencies[len(latencies)-1]),
	}
}
