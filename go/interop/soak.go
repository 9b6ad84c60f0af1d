package interop

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// SoakConfig holds the soak flags of the client (CONTRACT.md, "Client"),
// read by rpc_soak and channel_soak.
type SoakConfig struct {
	// Iterations is how many large_unary calls the case makes.
	Iterations int
	// MaxFailures is how many of them may fail.
	MaxFailures int
	// PerIterationMaxLatency is the deadline of each call; a call that took
	// longer fails its iteration.
	PerIterationMaxLatency time.Duration
	// OverallTimeout is measured from the start of the case: no iteration
	// starts after it.
	OverallTimeout time.Duration
	// MinTimeBetweenRPCs is the least time between the starts of two
	// iterations of one worker.
	MinTimeBetweenRPCs time.Duration
	// Threads is the number of workers; each runs Iterations/Threads
	// iterations one after another.
	Threads int
}

// DefaultSoakConfig is the soak configuration of the contract's defaults.
func DefaultSoakConfig() SoakConfig {
	return SoakConfig{
		Iterations:             10,
		MaxFailures:            0,
		PerIterationMaxLatency: 1000 * time.Millisecond,
		OverallTimeout:         10 * time.Second,
		MinTimeBetweenRPCs:     0,
		Threads:                1,
	}
}

// Validate reports a configuration the soak cases cannot run: iterations
// or workers not positive, iterations not shared evenly by the workers, or
// a negative value.
func (s SoakConfig) Validate() error {
	switch {
	case s.Iterations < 1:
		return fmt.Errorf("--soak_iterations = %d, want at least 1", s.Iterations)
	case s.Threads < 1:
		return fmt.Errorf("--soak_num_threads = %d, want at least 1", s.Threads)
	case s.Iterations%s.Threads != 0:
		return fmt.Errorf("--soak_iterations = %d is not a multiple of --soak_num_threads = %d", s.Iterations, s.Threads)
	case s.MaxFailures < 0:
		return fmt.Errorf("--soak_max_failures = %d, want at least 0", s.MaxFailures)
	case s.PerIterationMaxLatency < 0:
		return fmt.Errorf("--soak_per_iteration_max_acceptable_latency_ms = %d, want at least 0", s.PerIterationMaxLatency.Milliseconds())
	case s.OverallTimeout < 0:
		return fmt.Errorf("--soak_overall_timeout_seconds = %v, want at least 0", s.OverallTimeout.Seconds())
	case s.MinTimeBetweenRPCs < 0:
		return fmt.Errorf("--soak_min_time_ms_between_rpcs = %d, want at least 0", s.MinTimeBetweenRPCs.Milliseconds())
	}
	return nil
}

// budget is how long a soak case may take before the backstop counts:
// the last iteration starts at the latest at OverallTimeout and has
// PerIterationMaxLatency as its deadline.
func (s SoakConfig) budget() time.Duration { return s.OverallTimeout + s.PerIterationMaxLatency }

// SoakMetrics is the metrics object of a soak case's result line. The
// latencies are over the iterations that succeeded, in milliseconds with
// three decimals, and absent (nil) when none did.
type SoakMetrics struct {
	Iterations int      `json:"iterations"`
	Failures   int      `json:"failures"`
	P50        *float64 `json:"latency_ms_p50,omitempty"`
	P90        *float64 `json:"latency_ms_p90,omitempty"`
	P99        *float64 `json:"latency_ms_p99,omitempty"`
	Max        *float64 `json:"latency_ms_max,omitempty"`
}

// nearestRank returns the p-th percentile (0 < p <= 100) of sorted, which
// must not be empty: the value at rank ceil(p/100 × n), counted from 1. The
// rank is computed in integers, so that 90% of 10 is rank 9, not 10.
func nearestRank[T any](sorted []T, p int) T {
	n := len(sorted)
	rank := (p*n + 99) / 100
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// msOf is d in milliseconds, rounded to the microsecond (three decimals).
func msOf(d time.Duration) *float64 {
	ms := float64(d.Round(time.Microsecond).Microseconds()) / 1000
	return &ms
}

// soakFailure is why one iteration failed.
type soakFailure struct {
	iteration int // from 1
	reason    string
}

// soakTally collects the iterations of a soak case as they end. It lives in
// the case's Checks (under its mutex), so a result made by the backstop
// still carries what ran.
type soakTally struct {
	run       int
	latencies []time.Duration // of the iterations that succeeded
	failures  []soakFailure
}

// metrics turns the tally into the result line's metrics.
func (t *soakTally) metrics() *SoakMetrics {
	m := &SoakMetrics{Iterations: t.run, Failures: len(t.failures)}
	if len(t.latencies) > 0 {
		sorted := slices.Clone(t.latencies)
		slices.Sort(sorted)
		m.P50 = msOf(nearestRank(sorted, 50))
		m.P90 = msOf(nearestRank(sorted, 90))
		m.P99 = msOf(nearestRank(sorted, 99))
		m.Max = msOf(sorted[len(sorted)-1])
	}
	return m
}

// startSoak gives the case a soak tally (so its result has metrics).
func (c *Checks) startSoak() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.soak = &soakTally{}
}

// endIteration records one iteration that ended: succeeded with its
// latency when reason is "", else failed for reason.
func (c *Checks) endIteration(iteration int, latency time.Duration, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.soak.run++
	if reason == "" {
		c.soak.latencies = append(c.soak.latencies, latency)
	} else {
		c.soak.failures = append(c.soak.failures, soakFailure{iteration, reason})
	}
}

// soakSoFar returns how many iterations ended and the failures, sorted by
// iteration.
func (c *Checks) soakSoFar() (run int, failures []soakFailure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	failures = slices.Clone(c.soak.failures)
	slices.SortFunc(failures, func(a, b soakFailure) int { return a.iteration - b.iteration })
	return c.soak.run, failures
}

// soakReasonsShown is how many iterations' reasons a failures message lists.
const soakReasonsShown = 5

// DoRPCSoak runs large_unary over the client's channel as the soak flags
// (c.Soak) say.
func DoRPCSoak(ctx context.Context, c *Clients, ck *Checks) {
	runSoak(ctx, "rpc_soak", c.Soak, ck, func(ctx context.Context, req *testingpb.SimpleRequest) string {
		return soakIteration(ctx, c.Test, req, c.Soak.PerIterationMaxLatency)
	})
}

// DoChannelSoak is DoRPCSoak with a new channel for each iteration, made
// with c.Dial (the target, credentials and options of the client's
// channel) and closed after the call.
func DoChannelSoak(ctx context.Context, c *Clients, ck *Checks) {
	runSoak(ctx, "channel_soak", c.Soak, ck, func(ctx context.Context, req *testingpb.SimpleRequest) string {
		if c.Dial == nil {
			return "no way to make a channel (Clients.Dial is nil)"
		}
		cc, err := c.Dial()
		if err != nil {
			return fmt.Sprintf("new channel: %v", err)
		}
		defer func() { _ = cc.Close() }()
		return soakIteration(ctx, testingpb.NewTestServiceClient(cc), req, c.Soak.PerIterationMaxLatency)
	})
}

// soakIteration makes one large_unary call with maxLatency as its deadline
// and returns why the iteration failed, or "" when it succeeded. The
// latency is measured by the caller, around this whole function.
func soakIteration(ctx context.Context, test testingpb.TestServiceClient, req *testingpb.SimpleRequest, maxLatency time.Duration) string {
	// Not ck.withTimeout: the workers' calls overlap, and the backstop
	// watches the whole case's budget (runSoak) instead.
	ctx, cancel := context.WithTimeout(ctx, maxLatency)
	defer cancel()
	resp, err := test.UnaryCall(ctx, req)
	if err != nil {
		return "UnaryCall ended with " + rpcStatus(err)
	}
	return strings.Join(payloadProblems("UnaryCall", resp.GetPayload(), largeResponseSize), ", ")
}

// payloadProblems lists what is wrong with p for a payload of want zero
// bytes of type COMPRESSABLE, in the words of checkPayload.
func payloadProblems(call string, p *testingpb.Payload, want int) []string {
	var out []string
	body := p.GetBody()
	if len(body) != want {
		out = append(out, fmt.Sprintf("%s payload size = %d, want %d", call, len(body), want))
	}
	if i := slices.IndexFunc(body, func(b byte) bool { return b != 0 }); i >= 0 {
		out = append(out, fmt.Sprintf("%s payload has byte 0x%02x at offset %d, want all zero bytes", call, body[i], i))
	}
	if typ := p.GetType(); typ != testingpb.PayloadType_COMPRESSABLE {
		out = append(out, fmt.Sprintf("%s payload type = %s, want COMPRESSABLE", call, typ))
	}
	return out
}

// runSoak runs cfg.Iterations iterations on cfg.Threads workers, each
// worker its share in sequence, an iteration starting at least
// cfg.MinTimeBetweenRPCs after the previous one of its worker started and
// never after cfg.OverallTimeout. iteration makes one call with the
// large_unary request and returns why it failed ("" when it did not); an iteration slower than
// cfg.PerIterationMaxLatency fails too. Then it records the checks
// completed and failures.
func runSoak(ctx context.Context, name string, cfg SoakConfig, ck *Checks, iteration func(context.Context, *testingpb.SimpleRequest) string) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		// The client validates its flags; this guards other callers.
		ck.failCase(fmt.Sprintf("%s: %v", name, err))
		return
	}
	stopStarting := start.Add(cfg.OverallTimeout)
	// The backstop gives the case its whole budget at once: between
	// iterations no call runs, and the workers' calls overlap, so the
	// deadline of the call started last says nothing here.
	ck.setDeadline(start.Add(cfg.budget()))
	ck.startSoak()

	perWorker := cfg.Iterations / cfg.Threads
	var wg sync.WaitGroup
	for w := range cfg.Threads {
		wg.Go(func() {
			// Made once, outside the timed part of the iterations; a
			// worker's calls are sequential and grpc-go has marshalled a
			// request by the time the call returns, so it can be reused.
			req := largeUnaryRequest()
			next := time.Now()
			for i := range perWorker {
				// No iteration starts after the overall timeout, so
				// none waits for a start beyond it either.
				if next.After(stopStarting) || !waitUntil(ctx, next) || time.Now().After(stopStarting) {
					return
				}
				began := time.Now()
				next = began.Add(cfg.MinTimeBetweenRPCs)
				reason := iteration(ctx, req)
				took := time.Since(began)
				if reason == "" && took > cfg.PerIterationMaxLatency {
					reason = fmt.Sprintf("took %.1f ms, want at most %s ms", float64(took.Microseconds())/1000,
						strconv.FormatFloat(float64(cfg.PerIterationMaxLatency.Microseconds())/1000, 'f', -1, 64))
				}
				ck.endIteration(w*perWorker+i+1, took, reason)
			}
		})
	}
	wg.Wait()

	run, failures := ck.soakSoFar()
	ck.check("completed", run == cfg.Iterations, "%s: %d of %d iterations ran before the overall timeout of %s, want all %d",
		name, run, cfg.Iterations, cfg.OverallTimeout, cfg.Iterations)
	if len(failures) <= cfg.MaxFailures {
		ck.pass("failures")
		return
	}
	reasons := make([]string, 0, soakReasonsShown+1)
	for _, f := range failures[:min(len(failures), soakReasonsShown)] {
		reasons = append(reasons, fmt.Sprintf("iteration %d: %s", f.iteration, f.reason))
	}
	if more := len(failures) - soakReasonsShown; more > 0 {
		reasons = append(reasons, fmt.Sprintf("and %d more", more))
	}
	ck.fail("failures", "%s: %d of %d iterations failed, want at most %d: %s",
		name, len(failures), run, cfg.MaxFailures, strings.Join(reasons, "; "))
}

// waitUntil sleeps until t; it returns false when ctx ended first.
func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// NewChannel makes a channel to target with opts and the stubs on it;
// Clients.Dial makes further channels with the same target and opts (for
// channel_soak and the cases against the bad server), Clients.Target is
// target, and Clients.Soak is DefaultSoakConfig.
func NewChannel(target string, opts ...grpc.DialOption) (*grpc.ClientConn, *Clients, error) {
	opts = slices.Clone(opts)
	dial := func() (*grpc.ClientConn, error) { return grpc.NewClient(target, opts...) }
	cc, err := dial()
	if err != nil {
		return nil, nil, err
	}
	c := NewClients(cc)
	c.Dial = dial
	c.Target = target
	return cc, c, nil
}
