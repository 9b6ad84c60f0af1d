package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"polyglot-grpc-interop/go/interop"
)

func TestBadUsageIsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--server_port", "1", "--test_case", "large_unary,nope"},
		{"--test_case", "large_unary"},
		{"--server_port", "1", "--use_tls", "--tls_ca_file", "/nonexistent/ca.pem"},
		{"--server_port", "1", "--no_such_flag"},
		{"--server_port", "1", "extra"},
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

// TestResultLines runs two cases against an in-process server and checks
// the printed lines.
func TestResultLines(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := interop.NewServer("Hi")
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)

	var out strings.Builder
	failed, err := run([]string{"--server_host", "127.0.0.1", "--server_port", port, "--test_case", "empty_unary,greeter_unary"}, &out)
	if err != nil || !failed {
		t.Fatalf("run = failed %t, %v; want failed true (greeter_unary against a Hi server), nil", failed, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("run printed %d lines, want 2:\n%s", len(lines), out.String())
	}
	want := []interop.Result{
		{Event: "result", Case: "empty_unary", Outcome: "passed"},
		{Event: "result", Case: "greeter_unary", Outcome: "failed", Message: `SayHello message = "Hi interop", want "Hello interop"`},
	}
	for i, line := range lines {
		var got interop.Result
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		if got.DurationMS <= 0 {
			t.Errorf("line %d duration_ms = %v, want > 0", i+1, got.DurationMS)
		}
		got.DurationMS = 0
		if got != want[i] {
			t.Errorf("line %d = %+v, want %+v", i+1, got, want[i])
		}
	}
}

// TestResultFile checks that --result_file gets the stdout lines, then the
// done line, and replaces what the file held before.
func TestResultFile(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := interop.NewServer(interop.DefaultGreeting)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	path := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(path, []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	failed, err := run([]string{"--server_host", "127.0.0.1", "--server_port", port, "--test_case", "empty_unary,greeter_unary", "--result_file", path}, &out)
	if err != nil || failed {
		t.Fatalf("run = failed %t, %v; want false, nil", failed, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := out.String() + `{"event":"done","cases":2}` + "\n"; string(got) != want {
		t.Errorf("result file =\n%s\nwant\n%s", got, want)
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("stdout has %d lines, want 2 (no done line):\n%s", n, out.String())
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
