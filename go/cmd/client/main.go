// Command client runs the interop cases of implementations/CONTRACT.md
// against a server and prints, on stdout, one JSON object per line:
// {"event":"ready"} once the channel is made, one result line per case, then
// {"event":"done","cases":N}.
//
// With --load unary|ping_pong it plays a load instead (the contract's "Load
// mode"): {"event":"ready"} once its channels are made, then one
// {"event":"load",...} line with the count, errors, rate and latencies of
// the measured window.
//
// Exit status: 0 when no case failed (unsupported is not a failure), 1 when
// any case failed, 2 on bad usage or setup. A load exits 0 once it printed
// its line, whatever errors it counted.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"polyglot-grpc-interop/go/interop"
)

// usageError is bad usage or setup: exit status 2.
type usageError struct{ error }

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	failed, err := run(os.Args[1:], os.Stdout)
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		os.Exit(1)
	case failed:
		os.Exit(1)
	}
}

// tlsDefault is a file of $INTEROP_TLS_DIR, or "" when it is not set.
func tlsDefault(name string) string {
	if dir := os.Getenv("INTEROP_TLS_DIR"); dir != "" {
		return filepath.Join(dir, name)
	}
	return ""
}

// options are the parsed and validated flags.
type options struct {
	host       string
	port       int
	cases      []interop.Case
	useTLS     bool
	useTestCA  bool
	caFile     string
	serverName string // --server_host_override, or --server_host when that is empty
	// useClientCert presents clientCert/clientKey on the channel (--use_client_cert).
	useClientCert bool
	clientCert    string
	clientKey     string
	soak          interop.SoakConfig
	resultFile    string
	// load is what the load flags say with --load (load mode), else nil.
	load *interop.LoadConfig
}

// parseFlags reads the flags of CONTRACT.md's "Client" section. Every
// error it returns is bad usage, but flag.ErrHelp (-h), which it returns
// after printing the flags on stderr.
func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	host := fs.String("server_host", "localhost", "host to connect to")
	port := fs.Int("server_port", 0, "port to connect to (required)")
	testCase := fs.String("test_case", "all", `case name, comma-separated list of names, or "all"`)
	useTLS := fs.Bool("use_tls", false, "connect with TLS")
	useTestCA := fs.Bool("use_test_ca", false, "with --use_tls: trust only the CA of --ca_file instead of the system roots")
	caFile := fs.String("ca_file", tlsDefault("ca.pem"), "the CA certificate --use_test_ca trusts")
	override := fs.String("server_host_override", "", "name for TLS server name indication and certificate verification (default: --server_host)")
	useClientCert := fs.Bool("use_client_cert", false, "with --use_tls: present a client certificate (mutual TLS)")
	clientCert := fs.String("client_cert_file", tlsDefault("client.pem"), "certificate chain --use_client_cert presents")
	clientKey := fs.String("client_key_file", tlsDefault("client.key"), "private key of --client_cert_file")
	def := interop.DefaultSoakConfig()
	iterations := fs.Int("soak_iterations", def.Iterations, "rpc_soak, channel_soak: how many RPCs")
	maxFailures := fs.Int("soak_max_failures", def.MaxFailures, "how many soak RPCs may fail")
	maxLatencyMS := fs.Int("soak_per_iteration_max_acceptable_latency_ms", int(def.PerIterationMaxLatency.Milliseconds()), "a soak RPC slower than this fails its iteration (also its deadline)")
	overallS := fs.Int("soak_overall_timeout_seconds", int(def.OverallTimeout.Seconds()), "no soak iteration starts after this")
	minTimeMS := fs.Int("soak_min_time_ms_between_rpcs", int(def.MinTimeBetweenRPCs.Milliseconds()), "least time between the starts of two iterations of one worker")
	threads := fs.Int("soak_num_threads", def.Threads, "soak workers; each runs soak_iterations/soak_num_threads iterations")
	resultFile := fs.String("result_file", "", `also write every result line and the done line to this file (created or truncated)`)
	defLoad := interop.DefaultLoadConfig()
	load := fs.String("load", "", `play a load instead of cases: "unary" or "ping_pong"`)
	loadConcurrency := fs.Int("load_concurrency", defLoad.Concurrency, "with --load: workers, each with one call in flight (unary) or one stream (ping_pong)")
	loadConnections := fs.Int("load_connections", defLoad.Connections, "with --load: channels, each its own HTTP/2 connection; worker i uses channel i mod N")
	loadWarmupMS := fs.Int("load_warmup_ms", int(defLoad.Warmup.Milliseconds()), "with --load: load before the measured window, not counted")
	loadDurationMS := fs.Int("load_duration_ms", int(defLoad.Duration.Milliseconds()), "with --load: the measured window")
	loadPayloadBytes := fs.Int("load_payload_bytes", defLoad.PayloadBytes, "with --load: request and response payload size, at most 1048576")
	// The flag package prints a multi-line usage on errors; the contract
	// wants one line, so errors are returned and usage shown only for -h.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *port < 1 || *port > 65535 {
		return nil, fmt.Errorf("--server_port is required, in 1..65535 (got %d)", *port)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var loadCfg *interop.LoadConfig
	var cases []interop.Case
	if given["load"] {
		if given["test_case"] {
			return nil, errors.New("--load and --test_case do not go together: a load plays no cases")
		}
		loadCfg = &interop.LoadConfig{
			Kind:         *load,
			Concurrency:  *loadConcurrency,
			Connections:  *loadConnections,
			Warmup:       time.Duration(*loadWarmupMS) * time.Millisecond,
			Duration:     time.Duration(*loadDurationMS) * time.Millisecond,
			PayloadBytes: *loadPayloadBytes,
		}
		if err := loadCfg.Validate(); err != nil {
			return nil, err
		}
	} else {
		var err error
		if cases, err = interop.ParseCases(*testCase); err != nil {
			return nil, err
		}
	}
	o := &options{
		host:          *host,
		port:          *port,
		cases:         cases,
		load:          loadCfg,
		useTLS:        *useTLS,
		useTestCA:     *useTestCA,
		caFile:        *caFile,
		serverName:    *override,
		useClientCert: *useClientCert,
		clientCert:    *clientCert,
		clientKey:     *clientKey,
		soak: interop.SoakConfig{
			Iterations:             *iterations,
			MaxFailures:            *maxFailures,
			PerIterationMaxLatency: time.Duration(*maxLatencyMS) * time.Millisecond,
			OverallTimeout:         time.Duration(*overallS) * time.Second,
			MinTimeBetweenRPCs:     time.Duration(*minTimeMS) * time.Millisecond,
			Threads:                *threads,
		},
		resultFile: *resultFile,
	}
	if o.serverName == "" {
		o.serverName = o.host
	}
	if err := o.soak.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// transportCredentials are the channel's credentials: plaintext, or with
// --use_tls TLS for o.serverName trusting the CA of --ca_file
// (--use_test_ca) or the system's roots, presenting the client certificate
// of --client_cert_file with --use_client_cert.
func (o *options) transportCredentials() (credentials.TransportCredentials, error) {
	if !o.useTLS {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{ServerName: o.serverName}
	if o.useTestCA {
		if o.caFile == "" {
			return nil, errors.New("--use_test_ca needs --ca_file (or INTEROP_TLS_DIR)")
		}
		var err error
		if cfg.RootCAs, err = interop.LoadCertPool(o.caFile); err != nil {
			return nil, err
		}
	} else {
		var err error
		if cfg.RootCAs, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("system root certificates: %w", err)
		}
	}
	if o.useClientCert {
		if o.clientCert == "" || o.clientKey == "" {
			return nil, errors.New("--use_client_cert needs --client_cert_file and --client_key_file (or INTEROP_TLS_DIR)")
		}
		cert, err := interop.LoadKeyPair(o.clientCert, o.clientKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// tlsCaseConfig loads what the tls cases need when any is to run (nil when
// none is): they always use TLS, with --ca_file, --server_host_override,
// --client_cert_file and --client_key_file, and the other-* files of
// $INTEROP_TLS_DIR, whatever --use_tls, --use_test_ca and --use_client_cert
// say, so that each refusal differs from mtls_accepted in one thing only.
func (o *options) tlsCaseConfig() (*interop.TLSCaseConfig, error) {
	if !slices.ContainsFunc(o.cases, func(c interop.Case) bool { return c.Group == interop.GroupTLS }) {
		return nil, nil
	}
	return interop.LoadTLSCaseConfig(o.serverName, interop.TLSCaseFiles{
		CAFile:   o.caFile,
		CertFile: o.clientCert,
		KeyFile:  o.clientKey,
		Dir:      os.Getenv("INTEROP_TLS_DIR"),
	})
}

// run runs the cases the flags name and prints their results on out. It
// reports whether any case failed.
func run(args []string, out io.Writer) (failed bool, err error) {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return false, err
	}
	if err != nil {
		return false, usageError{err}
	}
	creds, err := o.transportCredentials()
	if err != nil {
		return false, usageError{err}
	}
	tlsCases, err := o.tlsCaseConfig()
	if err != nil {
		return false, usageError{err}
	}
	target := net.JoinHostPort(o.host, strconv.Itoa(o.port))
	if o.load != nil {
		return false, runLoad(*o.load, target, creds, out)
	}
	// channel_soak makes its channels with the same target and options.
	cc, clients, err := interop.NewChannel(target, append(interop.DialOptions(), grpc.WithTransportCredentials(creds))...)
	if err != nil {
		return false, usageError{fmt.Errorf("channel to %s: %w", target, err)}
	}
	defer func() { _ = cc.Close() }()
	clients.Soak = o.soak
	clients.TLS = tlsCases

	// Opened last, so a usage error above leaves an existing file alone.
	var file *os.File
	results := out // result and done lines; the ready line goes to out only
	if o.resultFile != "" {
		file, err = os.Create(o.resultFile)
		if err != nil {
			return false, usageError{fmt.Errorf("create result file: %w", err)}
		}
		defer func() { _ = file.Close() }()
		// An *os.File is unbuffered, and WriteLine makes one Write per line,
		// which io.MultiWriter hands whole to each writer: every line reaches
		// stdout and the file at once.
		results = io.MultiWriter(out, file)
	}

	if err := interop.WriteLine(out, event{Event: "ready"}); err != nil {
		return false, fmt.Errorf("write ready line: %w", err)
	}
	ctx := context.Background()
	for _, tc := range o.cases {
		res := interop.RunCase(ctx, clients, tc)
		if res.Outcome == interop.OutcomeFailed {
			failed = true
		}
		if err := interop.WriteResult(results, res); err != nil {
			return failed, fmt.Errorf("write result: %w", err)
		}
	}
	if err := interop.WriteLine(results, done{Event: "done", Cases: len(o.cases)}); err != nil {
		return failed, fmt.Errorf("write done line: %w", err)
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return failed, fmt.Errorf("finish result file: %w", err)
		}
	}
	return failed, nil
}

// runLoad plays the load cfg on channels to target with creds, the
// credentials and options of the cases' channel, and prints the ready line
// and the load line on out.
func runLoad(cfg interop.LoadConfig, target string, creds credentials.TransportCredentials, out io.Writer) error {
	opts := loadDialOptions(creds)
	dial := func() (*grpc.ClientConn, error) {
		cc, err := grpc.NewClient(target, opts...)
		if err != nil {
			return nil, usageError{fmt.Errorf("channel to %s: %w", target, err)}
		}
		return cc, nil
	}
	ready := func() error {
		if err := interop.WriteLine(out, event{Event: "ready"}); err != nil {
			return fmt.Errorf("write ready line: %w", err)
		}
		return nil
	}
	slog.Info("load", "load", cfg.Kind, "target", target, "concurrency", cfg.Concurrency, "connections", cfg.Connections,
		"warmup", cfg.Warmup, "duration", cfg.Duration, "payload_bytes", cfg.PayloadBytes)
	res, err := interop.RunLoad(context.Background(), cfg, dial, ready)
	if err != nil {
		return err
	}
	slog.Info("load done", "count", res.Count, "errors", res.Errors, "first_error", res.FirstError)
	if err := interop.WriteLine(out, res); err != nil {
		return fmt.Errorf("write load line: %w", err)
	}
	return nil
}

// event is a line with nothing but its event: {"event":"ready"}.
type event struct {
	Event string `json:"event"`
}

// done is the last line: how many result lines came before it, which tells
// a reader that the client finished.
type done struct {
	Event string `json:"event"`
	Cases int    `json:"cases"`
}

// loadDialOptions are the options of the load's channels: the
// credentials of the cases' channel (transportCredentials: plaintext, or
// TLS with the same CA, name and client certificate), without the
// compression stats handler of interop.DialOptions, which only the
// compression cases read and which costs every call about 15 allocations
// (a stats event per header, message and trailer).
func loadDialOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithTransportCredentials(creds)}
}
