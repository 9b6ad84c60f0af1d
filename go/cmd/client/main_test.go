package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"polyglot-grpc-interop/go/interop"
)

func TestBadUsageIsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--server_port", "1", "--test_case", "large_unary,nope"},
		{"--test_case", "large_unary"},
		{"--server_port", "1", "--use_tls", "--use_test_ca", "--ca_file", "/nonexistent/ca.pem"},
		{"--server_port", "1", "--use_tls=true", "--use_test_ca=true", "--ca_file", "main_test.go"}, // no PEM in it
		{"--server_port", "1", "--tls_ca_file", "ca.pem"},                                           // the old flag is gone
		{"--server_port", "1", "--use_test_ca=maybe"},
		{"--server_port", "1", "--soak_iterations", "0"},
		{"--server_port", "1", "--soak_iterations", "-1"},
		{"--server_port", "1", "--soak_num_threads", "0"},
		{"--server_port", "1", "--soak_num_threads", "3"}, // 10 iterations are not shared evenly
		{"--server_port", "1", "--soak_max_failures", "-1"},
		{"--server_port", "1", "--soak_per_iteration_max_acceptable_latency_ms", "-1"},
		{"--server_port", "1", "--soak_overall_timeout_seconds", "-1"},
		{"--server_port", "1", "--soak_min_time_ms_between_rpcs", "-1"},
		{"--server_port", "1", "--soak_iterations", "ten"},
		{"--server_port", "1", "--no_such_flag"},
		{"--server_port", "1", "extra"},
		{"--server_port", "1", "--use_client_cert=maybe"},
		{"--server_port", "1", "--use_tls", "--use_client_cert", "--client_cert_file", "/nonexistent/client.pem", "--client_key_file", "/nonexistent/client.key"},
		{"--server_port", "1", "--use_tls", "--use_client_cert", "--client_cert_file", "main_test.go", "--client_key_file", "main_test.go"}, // no PEM in it
		{"--server_port", "1", "--use_tls", "--use_client_cert", "--client_cert_file=", "--client_key_file="},
		{"--server_port", "1", "--test_case", "mtls_accepted", "--ca_file", "/nonexistent/ca.pem"},
		{"--server_port", "1", "--test_case", "tls_wrong_name", "--client_key_file", "/nonexistent/client.key"},
		{"--server_port", "1", "--test_case", "empty_unary,oversized_request"}, // the bad client's case
	} {
		var out strings.Builder
		_, err := run(args, &out)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("run(%q) = %v, want a usage error (exit 2)", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) printed %q before failing, want nothing", args, out.String())
		}
	}
}

// serve starts an interop server with greeting on a loopback port for the
// test's life and returns the port.
func serve(t *testing.T, greeting string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := interop.NewServer(greeting)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
}

// lines splits printed output into its lines, each ended by "\n".
func lines(t *testing.T, out string) []string {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end with a newline:\n%s", out)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// TestResultLines runs two cases against an in-process server and checks
// the printed lines: ready, one result per case, done.
func TestResultLines(t *testing.T) {
	port := serve(t, "Hi")
	var out strings.Builder
	failed, err := run([]string{"--server_host", "127.0.0.1", "--server_port", port, "--test_case", "empty_unary,greeter_unary"}, &out)
	if err != nil || !failed {
		t.Fatalf("run = failed %t, %v; want failed true (greeter_unary against a Hi server), nil", failed, err)
	}
	got := lines(t, out.String())
	if len(got) != 4 {
		t.Fatalf("run printed %d lines, want 4 (ready, 2 results, done):\n%s", len(got), out.String())
	}
	if got[0] != `{"event":"ready"}` {
		t.Errorf("line 1 = %s, want the ready line", got[0])
	}
	if got[3] != `{"event":"done","cases":2}` {
		t.Errorf("line 4 = %s, want the done line with cases 2", got[3])
	}
	want := []interop.Result{
		{Event: "result", Case: "empty_unary", Outcome: "passed",
			Checks: map[string]string{"status": "passed"}, NotChecked: map[string]string{}},
		{Event: "result", Case: "greeter_unary", Outcome: "failed", Message: `SayHello message = "Hi interop", want "Hello interop"`,
			Checks: map[string]string{"status": "passed", "message": "failed", "index": "passed"}, NotChecked: map[string]string{}},
	}
	for i, line := range got[1:3] {
		var res interop.Result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			t.Fatalf("line %d %q: %v", i+2, line, err)
		}
		if res.DurationMS <= 0 {
			t.Errorf("line %d duration_ms = %v, want > 0", i+2, res.DurationMS)
		}
		res.DurationMS = 0
		if !reflect.DeepEqual(res, want[i]) {
			t.Errorf("line %d = %+v, want %+v", i+2, res, want[i])
		}
		// The contract's field order.
		keys := regexp.MustCompile(`^\{"event":.*,"case":.*,"outcome":.*,"duration_ms":.*,"message":.*,"checks":\{.*\},"not_checked":\{\}\}$`)
		if !keys.MatchString(line) {
			t.Errorf("line %d = %s, want the fields event, case, outcome, duration_ms, message, checks, not_checked in that order", i+2, line)
		}
	}
}

// TestResultFile checks that --result_file gets the result lines and the
// done line as printed on stdout, but not the ready line, and replaces what
// the file held before.
func TestResultFile(t *testing.T) {
	port := serve(t, interop.DefaultGreeting)
	path := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(path, []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	failed, err := run([]string{"--server_host", "127.0.0.1", "--server_port", port, "--test_case", "empty_unary,greeter_unary", "--result_file", path}, &out)
	if err != nil || failed {
		t.Fatalf("run = failed %t, %v; want false, nil", failed, err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stdout := lines(t, out.String())
	if len(stdout) != 4 || stdout[0] != `{"event":"ready"}` || stdout[3] != `{"event":"done","cases":2}` {
		t.Fatalf("stdout =\n%s\nwant ready, 2 results, done", out.String())
	}
	if want := strings.Join(stdout[1:], "\n") + "\n"; string(file) != want {
		t.Errorf("result file =\n%s\nwant the stdout lines but the ready line:\n%s", file, want)
	}
}

func TestResultFileCannotBeCreated(t *testing.T) {
	var out strings.Builder
	_, err := run([]string{"--server_port", "1", "--result_file", filepath.Join(t.TempDir(), "no", "such", "dir.jsonl")}, &out)
	var ue usageError
	if !errors.As(err, &ue) || out.Len() != 0 {
		t.Errorf("run = %v, printed %q; want a usage error (exit 2) and nothing printed", err, out.String())
	}
}

// TestTLSCasesNeedTheirFiles checks that a tls case asked for without the
// files it reads is bad usage, found before anything is printed, while the
// other cases do not need them.
func TestTLSCasesNeedTheirFiles(t *testing.T) {
	tls := filepath.Join("..", "..", "..", "testdata", "tls")
	for _, tt := range []struct {
		name string
		dir  string
		args []string
		want string
	}{
		{"no INTEROP_TLS_DIR", "", []string{"--ca_file", filepath.Join(tls, "ca.pem"), "--client_cert_file", filepath.Join(tls, "client.pem"), "--client_key_file", filepath.Join(tls, "client.key")}, "INTEROP_TLS_DIR"},
		{"INTEROP_TLS_DIR without the other-* files", t.TempDir(), []string{"--ca_file", filepath.Join(tls, "ca.pem"), "--client_cert_file", filepath.Join(tls, "client.pem"), "--client_key_file", filepath.Join(tls, "client.key")}, "other-ca.pem"},
	} {
		t.Setenv("INTEROP_TLS_DIR", tt.dir)
		var out strings.Builder
		_, err := run(append([]string{"--server_port", "1", "--test_case", "empty_unary,mtls_no_client_cert"}, tt.args...), &out)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) || out.Len() != 0 {
			t.Errorf("%s: run = %v, printed %q; want a usage error naming %s, nothing printed", tt.name, err, out.String(), tt.want)
		}
	}
	t.Setenv("INTEROP_TLS_DIR", "")
	port := serve(t, interop.DefaultGreeting)
	if res := resultOf(t, "--server_host", "127.0.0.1", "--server_port", port, "--test_case", "empty_unary"); res.Outcome != interop.OutcomePassed {
		t.Errorf("empty_unary without INTEROP_TLS_DIR = %s %q, want passed", res.Outcome, res.Message)
	}
}

// loadLinePattern is the load line of a load without errors.
var loadLinePattern = regexp.MustCompile(`^\{"event":"load","load":"(unary|ping_pong)","concurrency":4,"connections":2,"warmup_ms":50,"duration_ms":200,"payload_bytes":100,` +
	`"count":[1-9][0-9]*,"errors":0,"elapsed_ms":200\.0,"qps":[0-9]+\.[0-9],` +
	`"latency_us":\{"p50":[0-9]+\.[0-9],"p90":[0-9]+\.[0-9],"p99":[0-9]+\.[0-9],"max":[0-9]+\.[0-9]\},"first_error":""\}$`)

// TestLoadLines plays both loads through the client, over plaintext, TLS
// and mutual TLS (the credentials of the cases' channel): the ready line,
// then one load line without errors.
func TestLoadLines(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	plain := serve(t, interop.DefaultGreeting)
	mtls := serveMTLS(t, filepath.Join(tlsDir, "ca.pem"))
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"plaintext", []string{"--server_port", plain}},
		{"mutual TLS", []string{"--server_port", mtls, "--use_tls", "--use_test_ca", "--server_host_override", "foo.test.google.fr", "--use_client_cert"}},
	} {
		for _, load := range []string{"unary", "ping_pong"} {
			t.Run(tt.name+"/"+load, func(t *testing.T) {
				var out strings.Builder
				args := append([]string{"--server_host", "127.0.0.1", "--load", load, "--load_concurrency", "4", "--load_connections", "2",
					"--load_warmup_ms", "50", "--load_duration_ms", "200"}, tt.args...)
				failed, err := run(args, &out)
				if err != nil || failed {
					t.Fatalf("run(%q) = %t, %v; want false, nil", args, failed, err)
				}
				got := lines(t, out.String())
				if len(got) != 2 || got[0] != `{"event":"ready"}` || !loadLinePattern.MatchString(got[1]) || !strings.Contains(got[1], `"load":"`+load+`"`) {
					t.Errorf("run(%q) printed\n%s\nwant the ready line and a %s load line matching %s", args, out.String(), load, loadLinePattern)
				}
			})
		}
	}
}

// TestLoadRefusedHandshake: a TLS handshake the server refuses makes
// errors (Unavailable), not a failed run: the load line, exit 0.
func TestLoadRefusedHandshake(t *testing.T) {
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	mtls := serveMTLS(t, filepath.Join(tlsDir, "ca.pem"))
	var out strings.Builder
	args := []string{"--server_host", "127.0.0.1", "--server_port", mtls, "--use_tls", "--use_test_ca", "--load", "unary",
		"--load_concurrency", "2", "--load_warmup_ms", "0", "--load_duration_ms", "200"} // no client certificate
	if _, err := run(args, &out); err != nil {
		t.Fatalf("run(%q) = %v, want nil", args, err)
	}
	got := lines(t, out.String())
	var res interop.LoadResult
	if len(got) != 2 || json.Unmarshal([]byte(got[1]), &res) != nil {
		t.Fatalf("run(%q) printed\n%s\nwant the ready line and the load line", args, out.String())
	}
	if res.Count != 0 || res.Errors == 0 || !strings.HasPrefix(res.FirstError, "Unavailable: ") || !strings.Contains(got[1], `"latency_us":null`) {
		t.Errorf("load line %s; want count 0, errors, first_error Unavailable, latency_us null", got[1])
	}
}
