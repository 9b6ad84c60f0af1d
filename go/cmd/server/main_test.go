package main

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"polyglot-grpc-interop/go/interop"
)

// tlsDir is the repository's testdata/tls, seen from go/cmd/server.
var tlsDir = filepath.Join("..", "..", "..", "testdata", "tls")

// serve starts an interop server on a loopback port for the test's life and
// returns the port.
func serve(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := interop.NewServer(interop.DefaultGreeting, opts...)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
}

// healthCheck runs `server --health_check args...` and returns what it
// printed and returned.
func healthCheck(args ...string) (string, error) {
	var out strings.Builder
	err := run(append([]string{"--health_check"}, args...), &out)
	return out.String(), err
}

func TestHealthCheckServing(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	port := serve(t)
	if out, err := healthCheck("--port", port); err != nil || out != "SERVING\n" {
		t.Errorf("--health_check = %q, %v; want \"SERVING\\n\", nil", out, err)
	}
	// TLS asked of a plaintext server: unhealthy, one line saying why.
	out, err := healthCheck("--port", port, "--use_tls")
	if !errors.Is(err, errUnhealthy) || strings.Count(out, "\n") != 1 {
		t.Errorf("--health_check --use_tls against plaintext = %q, %v; want one line, errUnhealthy", out, err)
	}

	creds, err := credentials.NewServerTLSFromFile(filepath.Join(tlsDir, "server.pem"), filepath.Join(tlsDir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := serve(t, grpc.Creds(creds))
	if out, err := healthCheck("--port", tlsPort, "--use_tls"); err != nil || out != "SERVING\n" {
		t.Errorf("--health_check --use_tls = %q, %v; want \"SERVING\\n\", nil", out, err)
	}
}

func TestHealthCheckNothingListening(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	_ = lis.Close()
	out, err := healthCheck("--port", port)
	if !errors.Is(err, errUnhealthy) {
		t.Errorf("--health_check on a closed port returned %v, want errUnhealthy (exit 1)", err)
	}
	if !strings.HasPrefix(out, "Unavailable") || strings.Count(out, "\n") != 1 {
		t.Errorf("--health_check on a closed port printed %q, want one line starting Unavailable", out)
	}
}

func TestHealthCheckNeedsPort(t *testing.T) {
	out, err := healthCheck()
	if err == nil || errors.Is(err, errUnhealthy) || out != "" {
		t.Errorf("--health_check without --port = %q, %v; want a usage error (exit 2)", out, err)
	}
}
