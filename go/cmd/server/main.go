// Command server serves helloworld.Greeter, grpc.testing.TestService, health
// and reflection as implementations/CONTRACT.md describes.
//
// Exit status: 0 after SIGTERM or SIGINT, 2 on bad flags or when it cannot
// listen.
//
// With --use_tls --require_client_cert it serves mutual TLS: the handshake
// requires a client certificate that chains to --client_ca_file.
//
// With --health_check it does not serve: it asks the server already running
// on --port of 127.0.0.1 for its health, prints one line (SERVING, another
// status, or why none came back) and exits 0 only when SERVING, else 1 (the
// contract of a Docker HEALTHCHECK command). --use_client_cert makes it
// present a client certificate, to check a server that requires one.
package main

import (
	"context"
	"crypto/tls"
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
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

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

// errUnhealthy is a --health_check that got no SERVING back: exit 1, the
// reason already printed on stdout.
var errUnhealthy = errors.New("not serving")

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	err := run(os.Args[1:], os.Stdout)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUnhealthy):
		os.Exit(1)
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

// run serves until SIGTERM or SIGINT, announcing readiness on out; with
// --health_check it checks a running server instead.
func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	port := fs.Int("port", 0, "TCP port to listen on, on all interfaces; 0 picks a free one")
	useTLS := fs.Bool("use_tls", false, "serve TLS")
	certFile := fs.String("tls_cert_file", tlsDefault("server.pem"), "certificate chain for --use_tls")
	keyFile := fs.String("tls_key_file", tlsDefault("server.key"), "private key for --use_tls")
	requireClientCert := fs.Bool("require_client_cert", false, "with --use_tls: mutual TLS, the handshake requires a client certificate that chains to --client_ca_file")
	clientCAFile := fs.String("client_ca_file", tlsDefault("ca.pem"), "the CA client certificates must chain to, for --require_client_cert")
	greeting := fs.String("greeting", interop.DefaultGreeting, "first word of every Greeter reply")
	healthCheck := fs.Bool("health_check", false, "do not serve: check the health of the server on --port of 127.0.0.1")
	caFile := fs.String("tls_ca_file", tlsDefault("ca.pem"), "CA trusted by --health_check --use_tls")
	override := fs.String("server_host_override", "foo.test.google.fr", "server name checked by --health_check --use_tls")
	useClientCert := fs.Bool("use_client_cert", false, "--health_check --use_tls: present a client certificate, for a server with --require_client_cert")
	clientCert := fs.String("client_cert_file", tlsDefault("client.pem"), "certificate chain --health_check --use_client_cert presents")
	clientKey := fs.String("client_key_file", tlsDefault("client.key"), "private key of --client_cert_file")
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
	if *healthCheck {
		if *port == 0 {
			return errors.New("--health_check needs --port of the running server")
		}
		return checkHealth(out, healthCheckOptions{
			port:          *port,
			useTLS:        *useTLS,
			caFile:        *caFile,
			serverName:    *override,
			useClientCert: *useClientCert,
			clientCert:    *clientCert,
			clientKey:     *clientKey,
		})
	}

	var opts []grpc.ServerOption
	if *useTLS {
		creds, err := interop.ServerTLS{
			CertFile:          *certFile,
			KeyFile:           *keyFile,
			RequireClientCert: *requireClientCert,
			ClientCAFile:      *clientCAFile,
		}.Credentials()
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(creds))
	} else if *requireClientCert {
		// The contract's flag means mutual TLS "with --use_tls"; without it
		// there is no handshake to ask a certificate in.
		slog.Warn("--require_client_cert has no effect without --use_tls")
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
	if _, err := out.Write(append(line, '\n')); err != nil {
		return err
	}
	slog.Info("listening", "port", bound, "tls", *useTLS, "require_client_cert", *useTLS && *requireClientCert, "greeting", *greeting)

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

// healthCheckOptions are the flags of --health_check.
type healthCheckOptions struct {
	port       int
	useTLS     bool
	caFile     string // trusted with useTLS
	serverName string // verified with useTLS
	// useClientCert presents clientCert/clientKey with useTLS, so that a
	// server with --require_client_cert can be checked.
	useClientCert bool
	clientCert    string
	clientKey     string
}

// credentials are the health check channel's: plaintext, or TLS as the
// flags say.
func (o healthCheckOptions) credentials() (credentials.TransportCredentials, error) {
	if !o.useTLS {
		return insecure.NewCredentials(), nil
	}
	if o.caFile == "" {
		return nil, errors.New("--health_check --use_tls needs --tls_ca_file (or INTEROP_TLS_DIR)")
	}
	roots, err := interop.LoadCertPool(o.caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: o.serverName}
	if o.useClientCert {
		if o.clientCert == "" || o.clientKey == "" {
			return nil, errors.New("--health_check --use_client_cert needs --client_cert_file and --client_key_file (or INTEROP_TLS_DIR)")
		}
		cert, err := interop.LoadKeyPair(o.clientCert, o.clientKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// checkHealth prints the overall health status of the server on
// 127.0.0.1:o.port, or why there is none, as one line on out; it returns
// errUnhealthy unless the status is SERVING.
func checkHealth(out io.Writer, o healthCheckOptions) error {
	creds, err := o.credentials()
	if err != nil {
		fmt.Fprintln(out, err)
		return errUnhealthy
	}
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port))
	st, err := interop.CheckHealth(context.Background(), target, creds)
	if err != nil {
		fmt.Fprintln(out, strings.ReplaceAll(err.Error(), "\n", " "))
		return errUnhealthy
	}
	fmt.Fprintln(out, st)
	if st != healthpb.HealthCheckResponse_SERVING {
		return errUnhealthy
	}
	return nil
}
