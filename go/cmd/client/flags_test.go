package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"polyglot-grpc-interop/go/interop"
)

// TestMain lets a test run main() in a child process (to see its exit
// status): with INTEROP_CLIENT_MAIN=1 the test binary is the client, its
// arguments those of INTEROP_CLIENT_ARGS (separated by spaces).
func TestMain(m *testing.M) {
	if os.Getenv("INTEROP_CLIENT_MAIN") == "1" {
		os.Args = append([]string{"client"}, strings.Fields(os.Getenv("INTEROP_CLIENT_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs the client's main() in a child process with args and
// returns its exit status, stdout and stderr.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INTEROP_CLIENT_MAIN=1", "INTEROP_CLIENT_ARGS="+strings.Join(args, " "))
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run the client: %v", err)
	}
	return code, out.String(), errOut.String()
}

// TestBadSoakFlagsExitTwo checks the exit status of the program itself.
func TestBadSoakFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--server_port", "1", "--soak_iterations", "0"},
		{"--server_port", "1", "--soak_iterations", "4", "--soak_num_threads", "3"},
	} {
		code, stdout, stderr := runMain(t, args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--soak_") {
			t.Errorf("client %q: exit %d, stdout %q, stderr %q; want exit 2, nothing on stdout, one line naming the flag on stderr", args, code, stdout, stderr)
		}
	}
}

func TestFlagDefaults(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", "/some/tls")
	o, err := parseFlags([]string{"--server_port", "1"})
	if err != nil {
		t.Fatal(err)
	}
	want := interop.SoakConfig{Iterations: 10, MaxFailures: 0, PerIterationMaxLatency: time.Second,
		OverallTimeout: 10 * time.Second, MinTimeBetweenRPCs: 0, Threads: 1}
	if o.soak != want {
		t.Errorf("soak flags default to %+v, want %+v", o.soak, want)
	}
	if o.host != "localhost" || o.serverName != "localhost" || o.useTLS || o.useTestCA || o.caFile != "/some/tls/ca.pem" || len(o.cases) != 24 {
		t.Errorf("defaults: host %q, server name %q, use_tls %t, use_test_ca %t, ca_file %q, %d cases; want localhost, localhost, false, false, /some/tls/ca.pem, 24",
			o.host, o.serverName, o.useTLS, o.useTestCA, o.caFile, len(o.cases))
	}

	// --server_host_override defaults to --server_host, and wins when given.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--server_host", "example.com"}, "example.com"},
		{[]string{"--server_host", "example.com", "--server_host_override", ""}, "example.com"},
		{[]string{"--server_host", "example.com", "--server_host_override", "foo.test.google.fr"}, "foo.test.google.fr"},
	} {
		o, err := parseFlags(append([]string{"--server_port", "1"}, tt.args...))
		if err != nil || o.serverName != tt.want {
			t.Errorf("parseFlags(%q): server name %q, %v; want %q", tt.args, o.serverName, err, tt.want)
		}
	}

	o, err = parseFlags([]string{"--server_port", "1", "--soak_iterations", "12", "--soak_max_failures", "2",
		"--soak_per_iteration_max_acceptable_latency_ms", "250", "--soak_overall_timeout_seconds", "3",
		"--soak_min_time_ms_between_rpcs", "7", "--soak_num_threads", "4"})
	want = interop.SoakConfig{Iterations: 12, MaxFailures: 2, PerIterationMaxLatency: 250 * time.Millisecond,
		OverallTimeout: 3 * time.Second, MinTimeBetweenRPCs: 7 * time.Millisecond, Threads: 4}
	if err != nil || o.soak != want {
		t.Errorf("soak flags given: %+v, %v; want %+v", o.soak, err, want)
	}
}

func TestBoolFlagForms(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--use_tls", "--use_test_ca"}, true},
		{[]string{"--use_tls=true", "--use_test_ca=true"}, true},
		{[]string{"--use_tls=false", "--use_test_ca=false"}, false},
		{[]string{"-use_tls", "-use_test_ca=1"}, true},
	} {
		o, err := parseFlags(append([]string{"--server_port", "1"}, tt.args...))
		if err != nil || o.useTLS != tt.want || o.useTestCA != tt.want {
			t.Errorf("parseFlags(%q): use_tls %t, use_test_ca %t, %v; want both %t", tt.args, o.useTLS, o.useTestCA, err, tt.want)
		}
	}
}

// tlsDir is the repository's testdata/tls, seen from go/cmd/client.
var tlsDir = filepath.Join("..", "..", "..", "testdata", "tls")

// serveTLS starts an interop server with the test certificate on a
// loopback port for the test's life and returns the port.
func serveTLS(t *testing.T) string {
	t.Helper()
	creds, err := credentials.NewServerTLSFromFile(filepath.Join(tlsDir, "server.pem"), filepath.Join(tlsDir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := interop.NewServer(interop.DefaultGreeting, grpc.Creds(creds))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
}

// otherCA writes a freshly made CA certificate, which signed nothing, to a
// file and returns its path.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "not the interop test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// resultOf runs the client with args and returns its one result line.
func resultOf(t *testing.T, args ...string) interop.Result {
	t.Helper()
	var out strings.Builder
	if _, err := run(args, &out); err != nil {
		t.Fatalf("run(%q) = %v", args, err)
	}
	got := lines(t, out.String())
	if len(got) != 3 {
		t.Fatalf("run(%q) printed %d lines, want ready, one result, done:\n%s", args, len(got), out.String())
	}
	var res interop.Result
	if err := json.Unmarshal([]byte(got[1]), &res); err != nil {
		t.Fatalf("result line %q: %v", got[1], err)
	}
	return res
}

// TestTLS checks whom the client trusts and which name it verifies:
// --use_test_ca trusts the CA of --ca_file only, without it the system
// roots (which do not know the test CA), and the name verified is
// --server_host unless --server_host_override says otherwise.
func TestTLS(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	port := serveTLS(t)
	ca := filepath.Join(tlsDir, "ca.pem")
	unavailable := regexp.MustCompile(`^EmptyCall ended with status Unavailable ".*", want OK$`)
	for _, tt := range []struct {
		name string
		args []string
		pass bool
	}{
		{"test CA, name 127.0.0.1", []string{"--server_host", "127.0.0.1", "--use_test_ca", "--ca_file", ca}, true},
		{"test CA, name localhost", []string{"--server_host", "localhost", "--use_test_ca=true", "--ca_file", ca}, true},
		{"test CA from INTEROP_TLS_DIR", []string{"--server_host", "127.0.0.1", "--use_test_ca"}, true},
		{"test CA, override in the certificate", []string{"--server_host", "127.0.0.1", "--use_test_ca", "--server_host_override", "foo.test.google.fr"}, true},
		{"test CA, override not in the certificate", []string{"--server_host", "127.0.0.1", "--use_test_ca", "--server_host_override", "wrong.example"}, false},
		{"another CA", []string{"--server_host", "127.0.0.1", "--use_test_ca", "--ca_file", otherCA(t)}, false},
		{"system roots", []string{"--server_host", "127.0.0.1", "--ca_file", ca}, false},
		{"system roots, use_test_ca=false", []string{"--server_host", "127.0.0.1", "--use_test_ca=false", "--ca_file", ca}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := resultOf(t, append([]string{"--server_port", port, "--test_case", "empty_unary", "--use_tls"}, tt.args...)...)
			if tt.pass && res.Outcome != interop.OutcomePassed {
				t.Errorf("empty_unary = %s %q, want passed", res.Outcome, res.Message)
			}
			if !tt.pass && (res.Outcome != interop.OutcomeFailed || !unavailable.MatchString(res.Message)) {
				t.Errorf("empty_unary = %s %q, want failed with status Unavailable (handshake refused)", res.Outcome, res.Message)
			}
		})
	}

	// channel_soak's channels have the credentials of the client's.
	res := resultOf(t, "--server_port", port, "--test_case", "channel_soak", "--soak_iterations", "3",
		"--use_tls", "--use_test_ca", "--server_host", "127.0.0.1")
	if res.Outcome != interop.OutcomePassed || res.Metrics == nil || res.Metrics.Iterations != 3 {
		t.Errorf("channel_soak over TLS = %s %q %+v, want passed, 3 iterations", res.Outcome, res.Message, res.Metrics)
	}
}

// TestSoakResultLines runs both soak cases through the client: passed,
// each with its checks, and metrics as the last field.
func TestSoakResultLines(t *testing.T) {
	port := serve(t, interop.DefaultGreeting)
	var out strings.Builder
	failed, err := run([]string{"--server_host", "127.0.0.1", "--server_port", port, "--test_case", "rpc_soak,channel_soak",
		"--soak_iterations", "4", "--soak_num_threads", "2"}, &out)
	if err != nil || failed {
		t.Fatalf("run = failed %t, %v; want false, nil:\n%s", failed, err, out.String())
	}
	got := lines(t, out.String())
	if len(got) != 4 || got[3] != `{"event":"done","cases":2}` {
		t.Fatalf("run printed:\n%s\nwant ready, 2 results, done", out.String())
	}
	line := regexp.MustCompile(`^\{"event":"result","case":"(rpc|channel)_soak","outcome":"passed","duration_ms":[0-9.]+,"message":"",` +
		`"checks":\{"completed":"passed","failures":"passed"\},"not_checked":\{\},` +
		`"metrics":\{"iterations":4,"failures":0,"latency_ms_p50":[0-9.]+,"latency_ms_p90":[0-9.]+,"latency_ms_p99":[0-9.]+,"latency_ms_max":[0-9.]+\}\}$`)
	for _, l := range got[1:3] {
		if !line.MatchString(l) {
			t.Errorf("result line %s\ndoes not match %s", l, line)
		}
	}
}

// TestClientCertFlags checks the defaults and forms of --use_client_cert,
// --client_cert_file and --client_key_file.
func TestClientCertFlags(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", "/some/tls")
	o, err := parseFlags([]string{"--server_port", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if o.useClientCert || o.clientCert != "/some/tls/client.pem" || o.clientKey != "/some/tls/client.key" {
		t.Errorf("defaults: use_client_cert %t, client_cert_file %q, client_key_file %q; want false, /some/tls/client.pem, /some/tls/client.key",
			o.useClientCert, o.clientCert, o.clientKey)
	}
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"--use_client_cert"}, true},
		{[]string{"--use_client_cert=true"}, true},
		{[]string{"--use_client_cert=false"}, false},
	} {
		o, err := parseFlags(append([]string{"--server_port", "1"}, tt.args...))
		if err != nil || o.useClientCert != tt.want {
			t.Errorf("parseFlags(%q): use_client_cert %t, %v; want %t", tt.args, o.useClientCert, err, tt.want)
		}
	}
	o, err = parseFlags([]string{"--server_port", "1", "--client_cert_file", "a.pem", "--client_key_file", "a.key"})
	if err != nil || o.clientCert != "a.pem" || o.clientKey != "a.key" {
		t.Errorf("given files: %q %q, %v; want a.pem a.key", o.clientCert, o.clientKey, err)
	}
	t.Setenv("INTEROP_TLS_DIR", "")
	if o, err := parseFlags([]string{"--server_port", "1"}); err != nil || o.clientCert != "" || o.clientKey != "" {
		t.Errorf("without INTEROP_TLS_DIR: %q %q, %v; want no default files", o.clientCert, o.clientKey, err)
	}
}

// serveMTLS starts an interop server with the test certificate that
// requires a client certificate of the CA clientCA, as the server's
// --use_tls --require_client_cert --client_ca_file do, and returns its port.
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
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := interop.NewServer(interop.DefaultGreeting, grpc.Creds(creds))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
}

// TestMutualTLS checks that --use_client_cert presents the certificate of
// --client_cert_file on the client's channel, and only with --use_tls.
func TestMutualTLS(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	port := serveMTLS(t, filepath.Join(tlsDir, "ca.pem"))
	base := []string{"--server_host", "127.0.0.1", "--server_port", port, "--test_case", "empty_unary", "--use_tls", "--use_test_ca"}
	unavailable := regexp.MustCompile(`^EmptyCall ended with status Unavailable ".*", want OK$`)
	for _, tt := range []struct {
		name string
		args []string
		pass bool
	}{
		{"client certificate from INTEROP_TLS_DIR", []string{"--use_client_cert"}, true},
		{"client certificate given", []string{"--use_client_cert=true", "--client_cert_file", filepath.Join(tlsDir, "client.pem"), "--client_key_file", filepath.Join(tlsDir, "client.key")}, true},
		{"no client certificate", nil, false},
		{"use_client_cert=false", []string{"--use_client_cert=false"}, false},
		{"client certificate of another CA", []string{"--use_client_cert", "--client_cert_file", filepath.Join(tlsDir, "other-client.pem"), "--client_key_file", filepath.Join(tlsDir, "other-client.key")}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := resultOf(t, append(slices.Clone(base), tt.args...)...)
			if tt.pass && res.Outcome != interop.OutcomePassed {
				t.Errorf("empty_unary = %s %q, want passed", res.Outcome, res.Message)
			}
			if !tt.pass && (res.Outcome != interop.OutcomeFailed || !unavailable.MatchString(res.Message)) {
				t.Errorf("empty_unary = %s %q, want failed with status Unavailable (handshake refused)", res.Outcome, res.Message)
			}
		})
	}

	// Without --use_tls the flag changes nothing: plaintext, no files read.
	plain := serve(t, interop.DefaultGreeting)
	res := resultOf(t, "--server_host", "127.0.0.1", "--server_port", plain, "--test_case", "empty_unary", "--use_client_cert", "--client_cert_file", "/nonexistent.pem")
	if res.Outcome != interop.OutcomePassed {
		t.Errorf("empty_unary with --use_client_cert, without --use_tls = %s %q, want passed over plaintext", res.Outcome, res.Message)
	}
}

// TestTLSCasesThroughClient runs the tls cases as the runner does (the
// client's tls and mtls arguments, a server with --use_tls
// --require_client_cert): all pass. They make TLS channels of their own
// whatever --use_tls says, so they pass without it too.
func TestTLSCasesThroughClient(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	port := serveMTLS(t, filepath.Join(tlsDir, "ca.pem"))
	names := []string{"mtls_accepted", "tls_untrusted_server", "tls_wrong_name", "mtls_no_client_cert", "mtls_other_ca_client"}
	for _, tlsArgs := range [][]string{
		{"--use_tls", "--use_test_ca", "--ca_file", filepath.Join(tlsDir, "ca.pem"), "--server_host_override", "foo.test.google.fr", "--use_client_cert"},
		{"--server_host_override", "foo.test.google.fr"},
	} {
		var out strings.Builder
		args := append([]string{"--server_host", "127.0.0.1", "--server_port", port, "--test_case", strings.Join(names, ",")}, tlsArgs...)
		failed, err := run(args, &out)
		if err != nil || failed {
			t.Errorf("run(%q) = failed %t, %v; want every tls case passed:\n%s", args, failed, err, out.String())
			continue
		}
		got := lines(t, out.String())
		if len(got) != len(names)+2 {
			t.Fatalf("run(%q) printed %d lines, want %d:\n%s", args, len(got), len(names)+2, out.String())
		}
		for i, line := range got[1 : len(names)+1] {
			var res interop.Result
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatal(err)
			}
			check := "status_code"
			if names[i] == "mtls_accepted" {
				check = "status"
			}
			if res.Case != names[i] || res.Outcome != interop.OutcomePassed || !reflect.DeepEqual(res.Checks, map[string]string{check: interop.CheckPassed}) {
				t.Errorf("result %d = %s %s %v, want %s passed with %s", i+1, res.Case, res.Outcome, res.Checks, names[i], check)
			}
		}
	}
}

// TestLoadFlags checks the defaults of the load flags and that they are
// read: --load switches to load mode, which plays no cases.
func TestLoadFlags(t *testing.T) {
	o, err := parseFlags([]string{"--server_port", "1"})
	if err != nil || o.load != nil {
		t.Fatalf("without --load: load %+v, %v; want no load", o.load, err)
	}
	o, err = parseFlags([]string{"--server_port", "1", "--load", "unary"})
	want := interop.LoadConfig{Kind: "unary", Concurrency: 50, Connections: 1, Warmup: time.Second, Duration: 5 * time.Second, PayloadBytes: 100}
	if err != nil || o.load == nil || *o.load != want || len(o.cases) != 0 {
		t.Fatalf("--load unary: load %+v, %d cases, %v; want %+v, no cases", o.load, len(o.cases), err, want)
	}
	o, err = parseFlags([]string{"--server_port", "1", "--load=ping_pong", "--load_concurrency", "8", "--load_connections", "8",
		"--load_warmup_ms", "0", "--load_duration_ms", "1", "--load_payload_bytes", "1048576"})
	want = interop.LoadConfig{Kind: "ping_pong", Concurrency: 8, Connections: 8, Warmup: 0, Duration: time.Millisecond, PayloadBytes: 1 << 20}
	if err != nil || o.load == nil || *o.load != want {
		t.Fatalf("load flags given: %+v, %v; want %+v", o.load, err, want)
	}
}

// TestBadLoadFlagsExitTwo checks the contract's bad usage of the load
// flags: exit 2, nothing on stdout, one line on stderr naming the flag.
func TestBadLoadFlagsExitTwo(t *testing.T) {
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"--load", "unary", "--test_case", "empty_unary"}, "--test_case"},
		{[]string{"--load", "unary", "--test_case", "all"}, "--test_case"},
		{[]string{"--load", "bidi"}, "--load"},
		{[]string{"--load="}, "--load"},
		{[]string{"--load", "unary", "--load_concurrency", "0"}, "--load_concurrency"},
		{[]string{"--load", "ping_pong", "--load_connections", "0"}, "--load_connections"},
		{[]string{"--load", "unary", "--load_duration_ms", "0"}, "--load_duration_ms"},
		{[]string{"--load", "unary", "--load_concurrency", "2", "--load_connections", "3"}, "--load_connections"},
		{[]string{"--load", "unary", "--load_payload_bytes", "1048577"}, "--load_payload_bytes"},
		{[]string{"--load", "unary", "--load_payload_bytes", "-1"}, "--load_payload_bytes"},
		{[]string{"--load", "unary", "--load_warmup_ms", "-1"}, "--load_warmup_ms"},
		{[]string{"--load", "unary", "--load_concurrency", "many"}, "-load_concurrency"},
		{[]string{"--load"}, "-load"}, // no value
	} {
		args := append([]string{"--server_port", "1"}, tt.args...)
		var out strings.Builder
		_, err := run(args, &out)
		var ue usageError
		if !errors.As(err, &ue) || out.Len() != 0 {
			t.Errorf("run(%q) = %v, printed %q; want a usage error (exit 2) and nothing printed", args, err, out.String())
		}
		code, stdout, stderr := runMain(t, args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.flag) {
			t.Errorf("client %q: exit %d, stdout %q, stderr %q; want exit 2, nothing on stdout, one line naming %s on stderr", args, code, stdout, stderr, tt.flag)
		}
	}
}
