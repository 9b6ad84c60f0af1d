// Command server serves helloworld.Greeter, grpc.testing.TestService, health
// and reflection as implementations/CONTRACT.md describes.
//
// Exit status: 0 after SIGTERM or SIGINT, 2 on bad flags or when it cannot
// listen.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"polyglot-grpc-interop/go/interop"
)

// stopGrace bounds the graceful stop: in-flight calls get this long to
// finish, then the server stops hard, so a hung call cannot keep the
// runner waiting.
const stopGrace = 2 * time.Second

// listening is the readiness line printed on stdout.
type listening struct {
	Event          string `json:"event"`
	Port           int    `json:"port"`
	TLS            bool   `json:"tls"`
	Implementation string `json:"implementation"`
	Library        string `json:"library"`
}

// errServe marks a failure after start-up, which exits 1 rather than 2.
var errServe = errors.New("serve failed")

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	err := run(os.Args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errServe):
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(1)
	default:
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(2)
	}
}

// tlsDefault is a file of $INTEROP_TLS_DIR, or "" when it is not set.
func tlsDefault(name string) string {
	if dir := os.Getenv("INTEROP_TLS_DIR"); dir != "" {
		return filepath.Join(dir, name)
	}
	return ""
}

func run(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	port := fs.Int("port", 0, "TCP port to listen on, on all interfaces; 0 picks a free one")
	useTLS := fs.Bool("use_tls", false, "serve TLS")
	certFile := fs.String("tls_cert_file", tlsDefault("server.pem"), "certificate chain for --use_tls")
	keyFile := fs.String("tls_key_file", tlsDefault("server.key"), "private key for --use_tls")
	greeting := fs.String("greeting", interop.DefaultGreeting, "first word of every Greeter reply")
	// The flag package prints a multi-line usage on errors; the contract
	// wants one line, so errors are returned and usage shown only for -h.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("--port %d out of range 0..65535", *port)
	}

	var opts []grpc.ServerOption
	if *useTLS {
		if *certFile == "" || *keyFile == "" {
			return errors.New("--use_tls needs --tls_cert_file and --tls_key_file (or INTEROP_TLS_DIR)")
		}
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}

	lis, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	srv := interop.NewServer(*greeting, opts...)
	bound := lis.Addr().(*net.TCPAddr).Port

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()

	// The socket accepts connections from Listen on, so the line can go
	// out before Serve's goroutine is scheduled.
	line, err := json.Marshal(listening{
		Event:          "listening",
		Port:           bound,
		TLS:            *useTLS,
		Implementation: "go",
		Library:        "grpc-go " + grpc.Version,
	})
	if err != nil {
		return err
	}
	if _, err := os.Stdout.Write(append(line, '\n')); err != nil {
		return err
	}
	slog.Info("listening", "port", bound, "tls", *useTLS, "greeting", *greeting)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		slog.Info("stopping", "signal", sig.String())
	case err := <-serveErr:
		// Serve only returns on its own when the listener broke.
		return fmt.Errorf("%w: %v", errServe, err)
	}
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(stopGrace):
		slog.Warn("graceful stop took too long; stopping hard", "grace", stopGrace)
		srv.Stop()
	}
	return nil
}
