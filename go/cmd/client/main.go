// Command client runs the interop cases of implementations/CONTRACT.md
// against a server and prints, on stdout, one JSON object per line:
// {"event":"ready"} once the channel is made, one result line per case, then
// {"event":"done","cases":N}.
//
// Exit status: 0 when no case failed (unsupported is not a failure), 1 when
// any case failed, 2 on bad usage or setup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

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

// caDefault is $INTEROP_TLS_DIR/ca.pem, or "" when it is not set.
func caDefault() string {
	if dir := os.Getenv("INTEROP_TLS_DIR"); dir != "" {
		return filepath.Join(dir, "ca.pem")
	}
	return ""
}

// run runs the cases the flags name and prints their results on out. It
// reports whether any case failed.
func run(args []string, out io.Writer) (failed bool, err error) {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	host := fs.String("server_host", "localhost", "host to connect to")
	port := fs.Int("server_port", 0, "port to connect to (required)")
	testCase := fs.String("test_case", "all", `case name, comma-separated list of names, or "all"`)
	useTLS := fs.Bool("use_tls", false, "connect with TLS, trusting only --tls_ca_file")
	override := fs.String("server_host_override", "foo.test.google.fr", "name for TLS server name indication and certificate verification")
	caFile := fs.String("tls_ca_file", caDefault(), "CA certificate trusted with --use_tls")
	resultFile := fs.String("result_file", "", `also write every result line and the done line to this file (created or truncated)`)
	// The flag package prints a multi-line usage on errors; the contract
	// wants one line, so errors are returned and usage shown only for -h.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return false, err
		}
		return false, usageError{err}
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *port < 1 || *port > 65535 {
		return false, usageError{fmt.Errorf("--server_port is required, in 1..65535 (got %d)", *port)}
	}
	cases, err := interop.ParseCases(*testCase)
	if err != nil {
		return false, usageError{err}
	}

	creds := insecure.NewCredentials()
	if *useTLS {
		if *caFile == "" {
			return false, usageError{errors.New("--use_tls needs --tls_ca_file (or INTEROP_TLS_DIR)")}
		}
		name := *override
		if name == "" {
			name = *host
		}
		creds, err = credentials.NewClientTLSFromFile(*caFile, name)
		if err != nil {
			return false, usageError{fmt.Errorf("load CA file: %w", err)}
		}
	}
	target := net.JoinHostPort(*host, strconv.Itoa(*port))
	cc, err := grpc.NewClient(target, append(interop.DialOptions(), grpc.WithTransportCredentials(creds))...)
	if err != nil {
		return false, usageError{fmt.Errorf("channel to %s: %w", target, err)}
	}
	defer func() { _ = cc.Close() }()

	// Opened last, so a usage error above leaves an existing file alone.
	var file *os.File
	results := out // result and done lines; the ready line goes to out only
	if *resultFile != "" {
		file, err = os.Create(*resultFile)
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
	clients := interop.NewClients(cc)
	ctx := context.Background()
	for _, tc := range cases {
		res := interop.RunCase(ctx, clients, tc)
		if res.Outcome == interop.OutcomeFailed {
			failed = true
		}
		if err := interop.WriteResult(results, res); err != nil {
			return failed, fmt.Errorf("write result: %w", err)
		}
	}
	if err := interop.WriteLine(results, done{Event: "done", Cases: len(cases)}); err != nil {
		return failed, fmt.Errorf("write done line: %w", err)
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return failed, fmt.Errorf("finish result file: %w", err)
		}
	}
	return failed, nil
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
