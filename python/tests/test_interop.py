"""The Python client against the Python server, in process and through the command lines."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib

import grpc
import pytest
from conftest import PYTHON_DIR, REPO_ROOT, TLS_DIR, read

from interop import cases, client, server
from interop._gen import GEN_DIR, empty_pb2, messages_pb2, test_pb2_grpc

# What the Python client reports against the Python server for the one case that
# the server cannot serve (server.UNSUPPORTED): the probe is not rejected, while
# the gzip and plain calls that follow pass.
PROBE_FAILURE = "UnaryCall(expect_compressed=true, sent uncompressed) status = OK (0), want INVALID_ARGUMENT (3)"


def run_all(channel, names=None) -> list[dict]:
    results = []
    client.run(channel, names or list(cases.CASES), results.append)
    return results


def test_grpc_is_grpcio_and_grpc_testing_is_generated():
    assert hasattr(grpc, "server") and hasattr(grpc, "insecure_channel")
    assert os.path.dirname(grpc.__file__).endswith(os.path.join("site-packages", "grpc"))
    import grpc.testing.test_pb2_grpc as generated

    assert generated.__file__.startswith(os.path.join(GEN_DIR, "grpc", "testing"))
    assert test_pb2_grpc is generated
    # The generated stubs and grpcio work together.
    assert isinstance(messages_pb2.SimpleRequest(response_size=1), messages_pb2.SimpleRequest)


def test_all_cases_against_own_server(channel):
    results = run_all(channel)
    assert [r["case"] for r in results] == list(cases.CASES)
    assert len(results) == 22
    by_case = {r["case"]: r for r in results}
    for name, result in by_case.items():
        assert set(result) == {"event", "case", "outcome", "duration_ms", "message"}
        assert result["event"] == "result"
        if name in cases.UNSUPPORTED:
            assert result["outcome"] == "unsupported", result
            assert result["message"] == cases.UNSUPPORTED[name]
        elif name == "client_compressed_unary":
            assert (result["outcome"], result["message"]) == ("failed", PROBE_FAILURE)
        else:
            assert (result["outcome"], result["message"]) == ("passed", ""), result


def test_order_of_all():
    names = list(cases.CASES)
    assert names == [
        "greeter_unary",
        "greeter_server_streaming",
        "greeter_client_streaming",
        "greeter_bidi_streaming",
        "empty_unary",
        "large_unary",
        "client_streaming",
        "server_streaming",
        "ping_pong",
        "empty_stream",
        "custom_metadata",
        "status_code_and_message",
        "special_status_message",
        "unimplemented_method",
        "unimplemented_service",
        "cancel_after_begin",
        "cancel_after_first_response",
        "timeout_on_sleeping_server",
        "client_compressed_unary",
        "server_compressed_unary",
        "client_compressed_streaming",
        "server_compressed_streaming",
    ]


def test_wrong_greeting_is_caught_with_every_failed_check():
    running = server.start_server(port=0, greeting="Howdy")
    try:
        ch = client.make_channel("127.0.0.1", running.port)
        results = {r["case"]: r for r in run_all(ch, list(cases.CASES)[:4])}
        ch.close()
    finally:
        running.stop(grace=0.5)
    assert all(r["outcome"] == "failed" for r in results.values())
    assert results["greeter_unary"]["message"] == 'SayHello message = "Howdy interop", want "Hello interop"'
    streaming = results["greeter_server_streaming"]["message"].split("; ")
    assert len(streaming) == 5  # one per reply: a failed check does not stop the next
    assert streaming[0] == 'SayHelloStream reply 1 message = "Howdy interop (1 of 5)", want "Hello interop (1 of 5)"'
    assert results["greeter_bidi_streaming"]["message"].count("; ") == 3


def test_tls_end_to_end():
    cert_key = (read(os.path.join(TLS_DIR, "server.pem")), read(os.path.join(TLS_DIR, "server.key")))
    running = server.start_server(port=0, tls_cert_key=cert_key)
    try:
        ca = read(os.path.join(TLS_DIR, "ca.pem"))
        ch = client.make_channel("localhost", running.port, ca, "foo.test.google.fr")
        results = run_all(ch, ["greeter_bidi_streaming", "large_unary", "custom_metadata", "ping_pong"])
        ch.close()
    finally:
        running.stop(grace=0.5)
    assert [(r["outcome"], r["message"]) for r in results] == [("passed", "")] * 4


def test_error_status_still_echoes_trailers(channel):
    stub = test_pb2_grpc.TestServiceStub(channel)
    request = messages_pb2.SimpleRequest(response_status=messages_pb2.EchoStatus(code=9, message="nope"))
    metadata = ((cases.ECHO_INITIAL_KEY, "v"), (cases.ECHO_TRAILING_KEY, b"\x00\xff"))
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryCall(request, metadata=metadata, timeout=5)
    error = info.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "nope"
    assert (cases.ECHO_TRAILING_KEY, b"\x00\xff") in [tuple(m) for m in error.trailing_metadata()]
    assert ("x-grpc-test-echo-initial", "v") in [tuple(m) for m in error.initial_metadata()]


def test_half_duplex_answers_after_half_close(channel):
    stub = test_pb2_grpc.TestServiceStub(channel)
    requests = [cases._streaming_request(size) for size in (3, 5)]
    replies = list(stub.HalfDuplexCall(iter(requests), timeout=5))
    assert [len(r.payload.body) for r in replies] == [3, 5]


class _ByteCountingProxy:
    """A loopback TCP proxy that counts the bytes going back to the client."""

    def __init__(self, upstream_port: int):
        self.down = 0
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            threading.Thread(target=self._pipe, args=(downstream, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, downstream, True), daemon=True).start()

    def _pipe(self, src, dst, count):
        try:
            while data := src.recv(65536):
                if count:
                    self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self):
        self._listener.close()


def test_server_compresses_each_message_as_asked(running_server):
    """On the wire: 31415 zero bytes gzip to well under 1000 bytes; an uncompressed message does not."""
    proxy = _ByteCountingProxy(running_server.port)
    ch = client.make_channel("127.0.0.1", proxy.port)
    stub = test_pb2_grpc.TestServiceStub(ch)
    try:
        stub.EmptyCall(empty_pb2.Empty(), timeout=5)  # connection set up outside the measurements

        def bytes_down(sizes_and_flags):
            request = messages_pb2.StreamingOutputCallRequest(
                response_parameters=[
                    messages_pb2.ResponseParameters(size=size, compressed=messages_pb2.BoolValue(value=flag))
                    for size, flag in sizes_and_flags
                ]
            )
            before = proxy.down
            replies = list(stub.StreamingOutputCall(request, timeout=5))
            assert [len(r.payload.body) for r in replies] == [size for size, _ in sizes_and_flags]
            time.sleep(0.1)  # let the proxy count the trailers too
            return proxy.down - before

        assert bytes_down([(31415, True), (31415, True)]) < 2000
        assert 31415 < bytes_down([(31415, True), (31415, False)]) < 31415 + 2000
        assert 31415 < bytes_down([(31415, False), (31415, True)]) < 31415 + 2000
        assert bytes_down([(31415, False), (31415, False)]) > 2 * 31415
    finally:
        ch.close()
        proxy.close()


def test_checks_record_every_failure():
    checks = cases.Checks()
    checks.equal("StreamingInputCall aggregated_payload_size", 74921, 74922)
    checks.payload("UnaryCall response", messages_pb2.Payload(body=b"\x00\x01"), 2)
    checks.status("FullDuplexCall", grpc.StatusCode.OK, None, grpc.StatusCode.CANCELLED)
    checks.status("UnaryCall", grpc.StatusCode.UNKNOWN, "a\tb", grpc.StatusCode.UNKNOWN, "a b")
    checks.equal("UnaryCall trailing metadata x", b"\xab", b"\xab\xab\xab")
    assert checks.failures == [
        "StreamingInputCall aggregated_payload_size = 74921, want 74922",
        "UnaryCall response payload body has 1 non-zero bytes, want all zero",
        "FullDuplexCall status = OK (0), want CANCELLED (1)",
        'UnaryCall status message = "a\\tb", want "a b"',
        "UnaryCall trailing metadata x = 0xab, want 0xababab",
    ]


def test_exception_in_a_case_is_a_failed_result(monkeypatch, channel):
    def broken(ctx, checks):
        checks.fail("first check")
        raise ValueError("boom")

    monkeypatch.setitem(cases.CASES, "empty_unary", broken)
    result = cases.run_case(cases.Context(channel), "empty_unary")
    assert (result["outcome"], result["message"]) == ("failed", "first check; unexpected ValueError: boom")


def test_parse_cases():
    assert client.parse_cases("all") == list(cases.CASES)
    assert client.parse_cases("ping_pong, empty_unary") == ["ping_pong", "empty_unary"]
    with pytest.raises(Exception, match=r"unknown test case.*: nope"):
        client.parse_cases("empty_unary,nope")


def test_manifest_lists_exactly_the_unsupported_cases():
    with open(os.path.join(REPO_ROOT, "implementations", "python.toml"), "rb") as f:
        manifest = tomllib.load(f)
    assert manifest["name"] == "python"
    assert manifest["version"] == grpc.__version__
    assert manifest["client"]["unsupported"] == cases.UNSUPPORTED
    assert manifest["server"]["unsupported"] == server.UNSUPPORTED


# --- the command lines ------------------------------------------------------------------

SERVER = os.path.join(PYTHON_DIR, "interop_server.py")
CLIENT = os.path.join(PYTHON_DIR, "interop_client.py")


def _start_server(*args):
    env = dict(os.environ, INTEROP_TLS_DIR=TLS_DIR)
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # Readiness is the listening line, never a sleep; 20 s bounds a wedged start.
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    if not ready:
        proc.kill()
        pytest.fail("server printed no listening line within 20 s")
    return proc, json.loads(proc.stdout.readline())


def _stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def _client(*args, tls_dir=TLS_DIR):
    env = dict(os.environ, INTEROP_TLS_DIR=tls_dir)
    return subprocess.run([sys.executable, CLIENT, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("tls", [False, True])
def test_command_lines(tls):
    proc, ready = _start_server(*(["--use_tls"] if tls else []))
    try:
        assert ready == {
            "event": "listening",
            "port": ready["port"],
            "tls": tls,
            "implementation": "python",
            "library": f"grpcio {grpc.__version__}",
        }
        assert ready["port"] > 0
        tls_args = ["--use_tls", "--server_host_override", "foo.test.google.fr"] if tls else []
        done = _client(
            "--server_port",
            str(ready["port"]),
            "--test_case",
            "empty_unary,greeter_unary,client_compressed_streaming",
            *tls_args,
        )
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert [(r["case"], r["outcome"]) for r in lines] == [
            ("empty_unary", "passed"),
            ("greeter_unary", "passed"),
            ("client_compressed_streaming", "unsupported"),
        ]
        failing = _client("--server_port", str(ready["port"]), "--test_case", "client_compressed_unary", *tls_args)
        assert failing.returncode == 1
        assert json.loads(failing.stdout)["message"] == PROBE_FAILURE
    finally:
        assert _stop(proc) == 0
    assert proc.stdout.read() == ""  # nothing but the listening line on stdout


def test_server_exits_0_on_sigint():
    proc, _ = _start_server()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=5) == 0


def _assert_usage_error(done, fragment):
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and fragment in done.stderr, done.stderr


def test_client_usage_errors():
    _assert_usage_error(_client("--server_port", "1", "--test_case", "empty_unary,bogus"), "bogus")
    _assert_usage_error(_client("--test_case", "all"), "--server_port")
    _assert_usage_error(_client("--server_port", "1", "--use_tls", tls_dir="/nonexistent"), "ca.pem")
    _assert_usage_error(_client("--server_port", "1", "--use_tls=maybe"), "maybe")


def _run_server(*args):
    return subprocess.run([sys.executable, SERVER, *args], capture_output=True, text=True, timeout=30)


def test_server_usage_and_bind_errors():
    _assert_usage_error(_run_server("--port", "x"), "--port")
    _assert_usage_error(_run_server("--bogus"), "--bogus")
    with socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True) as taken:
        _assert_usage_error(_run_server("--port", str(taken.getsockname()[1])), "cannot bind")


def test_health_and_reflection(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health_stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", "helloworld.Greeter", "grpc.testing.TestService"):
        reply = health_stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name

    reflection_stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(reflection_stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {service.name for service in reply.list_services_response.service}
    assert {"helloworld.Greeter", "grpc.testing.TestService", "grpc.health.v1.Health"} <= names
    assert "grpc.testing.UnimplementedService" not in names
    # The descriptors behind the names are served too.
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.testing.TestService")
    (reply,) = list(reflection_stub.ServerReflectionInfo(iter([request]), timeout=5))
    assert reply.file_descriptor_response.file_descriptor_proto


# --- --health_check and --result_file --------------------------------------------------


def _health_check(*args):
    env = dict(os.environ, INTEROP_TLS_DIR=TLS_DIR)
    # The check's own deadline is 2 s; 30 s only catches a check that hangs.
    return subprocess.run(
        [sys.executable, SERVER, "--health_check", *args], capture_output=True, text=True, env=env, timeout=30
    )


@pytest.mark.parametrize("tls", [False, True])
def test_health_check_of_a_serving_server_exits_0(tls):
    proc, ready = _start_server(*(["--use_tls"] if tls else []))
    try:
        done = _health_check("--port", str(ready["port"]), *(["--use_tls"] if tls else []))
        assert (done.returncode, done.stdout) == (0, "SERVING\n"), done.stderr
        if not tls:
            # TLS asked of a plaintext server: no status, exit 1, one line saying why.
            done = _health_check("--port", str(ready["port"]), "--use_tls")
            assert done.returncode == 1
            assert done.stdout.count("\n") == 1, done.stdout
    finally:
        assert _stop(proc) == 0


def test_health_check_with_nothing_listening_exits_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _health_check("--port", str(port))
    assert done.returncode == 1
    assert done.stdout.startswith("Unavailable: ") and done.stdout.count("\n") == 1, done.stdout


def test_health_check_needs_a_port():
    _assert_usage_error(_run_server("--health_check"), "--port")


def test_result_file_gets_every_line_then_done(running_server, tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("stale line of an earlier run\n")
    done = _client(
        "--server_port",
        str(running_server.port),
        "--test_case",
        "empty_unary,greeter_unary",
        "--result_file",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 2
    assert path.read_text() == done.stdout + '{"event":"done","cases":2}\n'


def test_result_file_that_cannot_be_created_is_a_usage_error(tmp_path):
    _assert_usage_error(
        _client("--server_port", "1", "--result_file", str(tmp_path / "no" / "such.jsonl")), "cannot create result file"
    )
