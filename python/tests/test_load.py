"""The client's load mode (--load, CONTRACT.md "Load mode"): both loads against the
Python server through the command line, errors counted against a port where
nothing listens, one connection per channel, the TLS flags, bad usage, and the
numbers the load line is made of."""

import json
import math
import os
import select
import socket
import subprocess
import sys
import time

import grpc
import pytest
from conftest import PYTHON_DIR, TLS_DIR, read

from interop import _flags, cases, client, load, server

CLIENT = os.path.join(PYTHON_DIR, "interop_client.py")

# A short run: warm-up 100 ms, window 300 ms, 4 workers on 2 connections.
SHORT = [
    "--load_warmup_ms",
    "100",
    "--load_duration_ms",
    "300",
    "--load_concurrency",
    "4",
    "--load_connections",
    "2",
]

LOAD_LINE_FIELDS = [
    "event",
    "load",
    "concurrency",
    "connections",
    "warmup_ms",
    "duration_ms",
    "payload_bytes",
    "count",
    "errors",
    "elapsed_ms",
    "qps",
    "latency_us",
    "first_error",
]

RUN_TIMEOUT_S = 60
"""Bounds a client run: a short load takes well under a second, plus at most the 10 s wind-down."""


def _client(*args, tls_dir=TLS_DIR):
    env = dict(os.environ, INTEROP_TLS_DIR=tls_dir)
    return subprocess.run(
        [sys.executable, CLIENT, *args], capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S
    )


def _load_line(done, **want) -> dict:
    """The ready line, then the load line with the fields of the contract in its order
    and `want`'s values; exit 0. Returns the load line."""
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert json.loads(lines[0]) == {"event": "ready"}
    line = json.loads(lines[1])
    assert list(line) == LOAD_LINE_FIELDS
    assert {key: line[key] for key in want} == want
    return line


def _free_port() -> int:
    """A port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_successful(line: dict) -> None:
    assert line["count"] > 0
    assert line["errors"] == 0
    assert line["first_error"] == ""
    latency = line["latency_us"]
    assert list(latency) == ["p50", "p90", "p99", "max"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    # The window is never closed early; the bound above only catches a runaway.
    assert line["duration_ms"] <= line["elapsed_ms"] < line["duration_ms"] + 2000
    # qps = count / elapsed_ms * 1000, computed before elapsed_ms was rounded to 0.1 ms.
    assert line["qps"] == pytest.approx(line["count"] / line["elapsed_ms"] * 1000, rel=1e-3, abs=0.1)


@pytest.mark.parametrize("kind", load.LOADS)
def test_load_against_the_python_server(running_server, kind):
    done = _client("--server_port", str(running_server.port), "--load", kind, *SHORT)
    line = _load_line(
        done,
        event="load",
        load=kind,
        concurrency=4,
        connections=2,
        warmup_ms=100,
        duration_ms=300,
        payload_bytes=100,
    )
    _assert_successful(line)
    assert "load " + kind in done.stderr  # logs go to stderr


def test_load_payload_size_is_the_flag(running_server):
    done = _client("--server_port", str(running_server.port), "--load", "unary", *SHORT, "--load_payload_bytes", "0")
    _assert_successful(_load_line(done, payload_bytes=0))
    done = _client(
        "--server_port", str(running_server.port), "--load", "ping_pong", *SHORT, "--load_payload_bytes", "65536"
    )
    _assert_successful(_load_line(done, payload_bytes=65536))


@pytest.mark.parametrize("kind", load.LOADS)
def test_errors_are_counted(kind):
    start = time.monotonic()
    done = _client("--server_host", "127.0.0.1", "--server_port", str(_free_port()), "--load", kind, *SHORT)
    line = _load_line(done, load=kind, count=0, latency_us=None, qps=0.0)
    assert line["errors"] > 0
    assert line["first_error"].startswith("UNAVAILABLE: "), line["first_error"]
    # Failing calls end at once: no worker waits for a deadline, so no wind-down either.
    assert time.monotonic() - start < 10


# --- one connection per channel -------------------------------------------------------------


def _established_connections(pid: int, port: int) -> int:
    """The ESTABLISHED TCP connections of process `pid` to remote port `port` (Linux /proc)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)  # the header
            for row in f:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and remote_port == port and fields[9] in inodes:
                    count += 1
    return count


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="counts connections through Linux's /proc")
@pytest.mark.parametrize("kind", load.LOADS)
def test_each_channel_is_a_connection_of_its_own(running_server, kind):
    connections = 3
    env = dict(os.environ, INTEROP_TLS_DIR=TLS_DIR)
    args = ["--load", kind, "--load_warmup_ms", "300", "--load_duration_ms", "1500", "--load_concurrency", "6"]
    args += ["--load_connections", str(connections), "--server_port", str(running_server.port)]
    proc = subprocess.Popen(
        [sys.executable, CLIENT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no ready line within 20 s"
        assert json.loads(proc.stdout.readline()) == {"event": "ready"}
        # Sample for 1 s of the 1.8 s the load runs: the channels connect at once
        # (the warm-up covers it), so there are one connection per channel, never more.
        seen = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and proc.poll() is None:
            seen.append(_established_connections(proc.pid, running_server.port))
            time.sleep(0.05)
        ended, _, _ = select.select([proc.stdout], [], [], RUN_TIMEOUT_S)
        assert ended, f"no load line within {RUN_TIMEOUT_S} s"
        line = json.loads(proc.stdout.readline())
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert max(seen, default=0) == connections, seen
    _assert_successful(line)


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_server():
    """A server requiring a client certificate signed by the test CA."""
    running = server.start_server(
        port=0,
        tls_cert_key=(read(os.path.join(TLS_DIR, "server.pem")), read(os.path.join(TLS_DIR, "server.key"))),
        client_ca=read(os.path.join(TLS_DIR, "ca.pem")),
    )
    yield running
    running.stop(grace=0.5)


TLS_FLAGS = ["--use_tls", "--use_test_ca", "--server_host_override", "foo.test.google.fr"]


@pytest.mark.parametrize("kind", load.LOADS)
def test_load_over_mutual_tls(mtls_server, kind):
    done = _client("--server_port", str(mtls_server.port), "--load", kind, *SHORT, *TLS_FLAGS, "--use_client_cert")
    _assert_successful(_load_line(done, load=kind))


def test_load_without_the_client_certificate_is_refused(mtls_server):
    done = _client("--server_port", str(mtls_server.port), "--load", "unary", *SHORT, *TLS_FLAGS)
    line = _load_line(done, count=0, latency_us=None)
    assert line["errors"] > 0
    assert line["first_error"].startswith("UNAVAILABLE: "), line["first_error"]


# --- bad usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--load", "unary", "--test_case", "empty_unary"], "--test_case"),
        (["--load", "unary", "--test_case", "all"], "--test_case"),
        (["--load", "bogus"], "bogus"),
        (["--load", "unary", "--load_concurrency", "0"], "--load_concurrency"),
        (["--load", "unary", "--load_connections", "0"], "--load_connections"),
        (["--load", "ping_pong", "--load_duration_ms", "0"], "--load_duration_ms"),
        (["--load", "unary", "--load_concurrency", "2", "--load_connections", "3"], "--load_connections"),
        (["--load", "unary", "--load_payload_bytes", str(load.MAX_PAYLOAD_BYTES + 1)], "--load_payload_bytes"),
        (["--load", "unary", "--load_concurrency", "-1"], "--load_concurrency"),
        (["--load", "unary", "--load_warmup_ms", "-1"], "--load_warmup_ms"),
        (["--load", "unary", "--load_payload_bytes", "-1"], "--load_payload_bytes"),
        (["--load", "unary", "--load_concurrency", "many"], "--load_concurrency"),
        (["--load"], "--load"),
        (["--load", "unary", "--use_tls", "--use_test_ca", "--ca_file", "/nonexistent/x.pem"], "x.pem"),
    ],
)
def test_load_usage_errors(args, fragment):
    done = _client("--server_port", "1", *args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and fragment in done.stderr, done.stderr


def test_load_flags_and_their_defaults():
    args = client._parse_args(["--server_port", "1"])
    assert (args.load, args.test_case) == (None, "all")
    args = client._parse_args(["--server_port", "1", "--load", "ping_pong"])
    assert client.load_options(args) == load.LoadOptions(
        load="ping_pong", concurrency=50, connections=1, warmup_ms=1000, duration_ms=5000, payload_bytes=100
    )
    given = [
        "--load_concurrency=8",
        "--load_connections=8",
        "--load_warmup_ms=0",
        "--load_duration_ms=1",
        f"--load_payload_bytes={load.MAX_PAYLOAD_BYTES}",  # 1 MiB itself is allowed
    ]
    args = client._parse_args(["--server_port", "1", "--load", "unary", *given])
    assert client.load_options(args) == load.LoadOptions("unary", 8, 8, 0, 1, load.MAX_PAYLOAD_BYTES)
    with pytest.raises(_flags.UsageError, match="unknown load"):
        load.LoadOptions("pingpong").validate()


# --- the numbers of the load line ---------------------------------------------------------------


def test_nearest_rank_percentiles():
    values = list(range(1, 11))  # 1..10
    # The value at rank ceil(p/100 * n): 0.9 * 10 is 9.000000000000002 in floats, yet the rank is 9.
    assert [cases.nearest_rank(values, p) for p in (1, 10, 11, 50, 90, 99, 100)] == [1, 1, 2, 5, 9, 10, 10]
    assert [cases.nearest_rank([7], p) for p in (50, 99)] == [7, 7]
    # In microseconds with one decimal, from nanoseconds in any order.
    latencies_ns = [5_000_000, 1_000, 3_000, 2_000, 4_049, 1_234_567, 9_999, 8_000, 6_000, 7_000]
    # Sorted: 1000 2000 3000 4049 6000 7000 8000 9999 1234567 5000000.
    assert load.latency_summary_us(latencies_ns) == {"p50": 6.0, "p90": 1234.6, "p99": 5000.0, "max": 5000.0}
    hundred = [i * 1000 for i in range(100, 0, -1)]  # 1..100 us
    assert load.latency_summary_us(hundred) == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert load.latency_summary_us([]) is None


def test_only_what_ends_inside_the_window_counts():
    window = load.Window()
    window.success(1)
    window.error("UNAVAILABLE: warm-up")
    window.open()
    window.success(10)
    window.error("UnaryCall response payload 3 bytes, want 100")
    window.error("DEADLINE_EXCEEDED: Deadline Exceeded")
    window.success(20)
    window.close()
    window.success(30)
    window.error("UNAVAILABLE: after")
    assert (window.latencies_ns, window.errors) == ([10, 20], 2)
    assert window.first_error == "UnaryCall response payload 3 bytes, want 100"
    assert window.elapsed_ms > 0
    line = load.result_line(load.LoadOptions("unary"), window)
    assert list(line) == LOAD_LINE_FIELDS
    assert line["count"] == 2
    assert line["latency_us"] == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    assert math.isclose(line["qps"], round(2 / window.elapsed_ms * 1000, 1))


def test_status_text_names_the_code_as_grpcio_does():
    assert load.status_text(grpc.StatusCode.UNAVAILABLE, "no connection") == "UNAVAILABLE: no connection"
    assert load.status_text(grpc.StatusCode.DEADLINE_EXCEEDED, None) == "DEADLINE_EXCEEDED: "
