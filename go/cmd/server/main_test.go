package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"polyglot-grpc-interop/go/interop"
)

// TestMain lets a test run main() in a child process: with
// INTEROP_SERVER_MAIN=1 the test binary is the server, its arguments those
// of INTEROP_SERVER_ARGS (separated by spaces).
func TestMain(m *testing.M) {
	if os.Getenv("INTEROP_SERVER_MAIN") == "1" {
		os.Args = append([]string{"server"}, strings.Fields(os.Getenv("INTEROP_SERVER_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

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

// serveMTLS starts an interop server with the server's --use_tls
// --require_client_cert credentials (client certificates of clientCA).
func serveMTLS(t *testing.T, clientCA string) string {
	t.Helper()
	creds, err := interop.ServerTLS{
		CertFile:          filepath.Join(tlsDir, "server.pem"),
		KeyFile:           filepath.Join(tlsDir, "server.key"),
		RequireClientCert: true,
		ClientCAFile:      clientCA,
	}.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, grpc.Creds(creds))
}

// TestHealthCheckMutualTLS checks --health_check against a server that
// requires client certificates: SERVING with --use_client_cert, one line
// saying why not (exit 1) without it or with a certificate of another CA.
func TestHealthCheckMutualTLS(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	port := serveMTLS(t, filepath.Join(tlsDir, "ca.pem"))
	for _, args := range [][]string{
		{"--use_client_cert"},
		{"--use_client_cert=true", "--client_cert_file", filepath.Join(tlsDir, "client.pem"), "--client_key_file", filepath.Join(tlsDir, "client.key")},
	} {
		if out, err := healthCheck(append([]string{"--port", port, "--use_tls"}, args...)...); err != nil || out != "SERVING\n" {
			t.Errorf("--health_check --use_tls %q = %q, %v; want \"SERVING\\n\", nil", args, out, err)
		}
	}
	for _, args := range [][]string{
		nil,
		{"--use_client_cert=false"},
		{"--use_client_cert", "--client_cert_file", filepath.Join(tlsDir, "other-client.pem"), "--client_key_file", filepath.Join(tlsDir, "other-client.key")},
	} {
		out, err := healthCheck(append([]string{"--port", port, "--use_tls"}, args...)...)
		if !errors.Is(err, errUnhealthy) || !strings.HasPrefix(out, "Unavailable: ") || strings.Count(out, "\n") != 1 {
			t.Errorf("--health_check --use_tls %q against mutual TLS = %q, %v; want one line starting Unavailable, errUnhealthy", args, out, err)
		}
	}
	// A key that cannot be loaded: unhealthy, one line naming the file.
	out, err := healthCheck("--port", port, "--use_tls", "--use_client_cert", "--client_key_file", filepath.Join(tlsDir, "nonexistent.key"))
	if !errors.Is(err, errUnhealthy) || !strings.Contains(out, "nonexistent.key") || strings.Count(out, "\n") != 1 {
		t.Errorf("--health_check with a missing client key = %q, %v; want one line naming it, errUnhealthy", out, err)
	}
}

func TestMutualTLSFlagErrors(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	for _, args := range [][]string{
		{"--use_tls", "--require_client_cert", "--client_ca_file", filepath.Join(tlsDir, "nonexistent.pem")},
		{"--use_tls", "--require_client_cert", "--client_ca_file", filepath.Join(tlsDir, "server.key")}, // no certificate in it
		{"--use_tls", "--require_client_cert", "--client_ca_file="},
		{"--use_tls", "--require_client_cert=maybe"},
	} {
		var out strings.Builder
		err := run(append([]string{"--port", "0"}, args...), &out)
		if err == nil || errors.Is(err, errServe) || errors.Is(err, errUnhealthy) || out.Len() != 0 {
			t.Errorf("server %q = %v, printed %q; want a usage error (exit 2) before listening", args, err, out.String())
		}
	}
}

// TestServeMutualTLS runs the server program with --use_tls
// --require_client_cert in a child process, as the runner does for the tls
// group: its listening line says tls, a health check with the client
// certificate gets SERVING, one without it is refused, and SIGTERM stops it
// with exit status 0.
func TestServeMutualTLS(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INTEROP_SERVER_MAIN=1", "INTEROP_SERVER_ARGS=--port 0 --use_tls --require_client_cert")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = bufio.NewReader(stdout).WriteTo(io.Discard)
		exited <- cmd.Wait()
	}()
	var line listening
	select {
	case l, ok := <-lines:
		if !ok || json.Unmarshal([]byte(l), &line) != nil || line.Event != "listening" || !line.TLS || line.Port == 0 {
			t.Fatalf("the server printed %q, want its listening line with tls true", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server printed no listening line within 10 s")
	}
	port := strconv.Itoa(line.Port)
	if out, err := healthCheck("--port", port, "--use_tls", "--use_client_cert"); err != nil || out != "SERVING\n" {
		t.Errorf("--health_check --use_tls --use_client_cert = %q, %v; want SERVING", out, err)
	}
	if out, err := healthCheck("--port", port, "--use_tls"); !errors.Is(err, errUnhealthy) || !strings.HasPrefix(out, "Unavailable: ") {
		t.Errorf("--health_check --use_tls without a client certificate = %q, %v; want Unavailable, errUnhealthy", out, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("the server exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the server did not exit within 10 s of SIGTERM")
	}
}
