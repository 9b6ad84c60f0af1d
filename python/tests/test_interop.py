"""The Python client against the Python server, in process and through the command lines."""

import contextlib
import dataclasses
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import types
from concurrent import futures

import grpc
import pytest
from conftest import PYTHON_DIR, REPO_ROOT, TLS_DIR, read

from interop import cases, channels, client, server
from interop._gen import GEN_DIR, empty_pb2, helloworld_pb2, helloworld_pb2_grpc, messages_pb2, test_pb2_grpc

# What the Python client reports against the Python server for the one case that
# the server cannot serve (server.UNSUPPORTED): the probe is not rejected, while
# the gzip and plain calls that follow pass.
PROBE_FAILURE = "UnaryCall(expect_compressed=true, sent uncompressed) status = OK (0), want INVALID_ARGUMENT (3)"


def run_all(channel, names=None, new_channel=None) -> list[dict]:
    results = []
    client.run(channel, names or cases.default_cases(), results.append, new_channel)
    return results


def test_grpc_is_grpcio_and_grpc_testing_is_generated():
    assert hasattr(grpc, "server") and hasattr(grpc, "insecure_channel")
    assert os.path.dirname(grpc.__file__).endswith(os.path.join("site-packages", "grpc"))
    import grpc.testing.test_pb2_grpc as generated

    assert generated.__file__.startswith(os.path.join(GEN_DIR, "grpc", "testing"))
    assert test_pb2_grpc is generated
    # The generated stubs and grpcio work together.
    assert isinstance(messages_pb2.SimpleRequest(response_size=1), messages_pb2.SimpleRequest)


# The checks table of implementations/CONTRACT.md ("Checks"), copied by hand: the
# client's own rows (cases.CASES) are checked against this copy, not against themselves.
CHECKS_TABLE = {
    "greeter_unary": "status message index",
    "greeter_server_streaming": "status reply_count message index",
    "greeter_client_streaming": "status message index",
    "greeter_bidi_streaming": "status reply_count message index",
    "empty_unary": "status",
    "large_unary": "status payload_size payload_body payload_type",
    "client_streaming": "status aggregated_size",
    "server_streaming": "status response_count payload_size payload_body payload_type",
    "ping_pong": "status response_count payload_size payload_body payload_type",
    "empty_stream": "status response_count",
    "custom_metadata": "unary.status unary.payload_size unary.payload_body unary.payload_type unary.echo_initial "
    "unary.echo_trailing duplex.status duplex.response_count duplex.payload_size duplex.payload_body "
    "duplex.payload_type duplex.echo_initial duplex.echo_trailing",
    "status_code_and_message": "unary.status_code unary.status_message duplex.status_code duplex.status_message",
    "special_status_message": "status_code status_message",
    "unimplemented_method": "status_code",
    "unimplemented_service": "status_code",
    "cancel_after_begin": "status_code",
    "cancel_after_first_response": "status payload_size payload_body payload_type status_code",
    "timeout_on_sleeping_server": "status_code",
    "client_compressed_unary": "probe.status_code compressed.status compressed.payload_size compressed.payload_body "
    "compressed.payload_type compressed.sent_compressed uncompressed.status uncompressed.payload_size "
    "uncompressed.payload_body uncompressed.payload_type",
    "server_compressed_unary": "compressed.status compressed.payload_size compressed.payload_body "
    "compressed.payload_type compressed.response_compressed uncompressed.status uncompressed.payload_size "
    "uncompressed.payload_body uncompressed.payload_type uncompressed.response_compressed",
    "client_compressed_streaming": "probe.status_code stream.status stream.aggregated_size stream.sent_compressed",
    "server_compressed_streaming": "status response_count payload_size payload_body payload_type response_compressed",
    "rpc_soak": "completed failures",
    "channel_soak": "completed failures",
    "goaway": "first.status first.payload_size second.status second.payload_size",
    "rst_after_header": "not_ok",
    "rst_during_data": "not_ok",
    "rst_after_data": "not_ok",
    "ping": "status payload_size",
    "max_streams": "status payload_size payload_type",
    "data_frame_padding": "status payload_size payload_body",
    "no_df_padding_sanity_test": "status payload_size payload_body",
    "http_400": "status_code",
    "http_401": "status_code",
    "http_403": "status_code",
    "http_404": "status_code",
    "http_429": "status_code",
    "http_502": "status_code",
    "http_503": "status_code",
    "http_504": "status_code",
    "missing_grpc_status": "status_code",
    "non_grpc_content_type": "status_code",
    "unparsable_grpc_status": "status_code",
    "truncated_message": "status_code",
    "invalid_protobuf": "status_code",
    "response_too_large": "status_code",
    "compressed_without_encoding": "status_code",
    "unknown_response_encoding": "status_code",
    "two_responses": "status_code",
    "no_response": "status_code",
    "connection_dropped": "status_code",
    "silent_server": "status_code",
    "mtls_accepted": "status",
    "tls_untrusted_server": "status_code",
    "tls_wrong_name": "status_code",
    "mtls_no_client_cert": "status_code",
    "mtls_other_ca_client": "status_code",
}

# What grpcio cannot check, by case: everything else is checked.
NOT_CHECKED = {
    "client_compressed_unary": {"compressed.sent_compressed": cases.SENT_COMPRESSED_REASON},
    "server_compressed_unary": {
        "compressed.response_compressed": cases.RESPONSE_COMPRESSED_REASON,
        "uncompressed.response_compressed": cases.RESPONSE_COMPRESSED_REASON,
    },
    "server_compressed_streaming": {"response_compressed": cases.RESPONSE_COMPRESSED_REASON},
}

RESULT_KEYS = ["event", "case", "outcome", "duration_ms", "message", "checks", "not_checked"]
SOAK_RESULT_KEYS = [*RESULT_KEYS, "metrics"]
METRIC_KEYS = [
    "iterations",
    "failures",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
    "latency_ms_max",
]


def test_rows_are_the_contract_table():
    assert {name: " ".join(spec.checks) for name, spec in cases.CASES.items()} == CHECKS_TABLE


def test_not_checked_reasons_name_grpcio_and_its_version():
    for reason in (cases.SENT_COMPRESSED_REASON, cases.RESPONSE_COMPRESSED_REASON):
        assert reason.startswith(f"grpcio {grpc.__version__} does not expose whether a ")
    assert "sent message" in cases.SENT_COMPRESSED_REASON
    assert "received message" in cases.RESPONSE_COMPRESSED_REASON


def test_all_cases_against_own_server(running_server, channel):
    results = run_all(channel, new_channel=channels.channel_factory("localhost", running_server.port))
    assert [r["case"] for r in results] == cases.default_cases()
    assert len(results) == 24
    by_case = {r["case"]: r for r in results}
    for name, result in by_case.items():
        # metrics (last) for the soak cases only.
        assert list(result) == (SOAK_RESULT_KEYS if name.endswith("_soak") else RESULT_KEYS), name
        assert result["event"] == "result"
        if name in cases.UNSUPPORTED:
            assert result["outcome"] == "unsupported", result
            assert result["message"] == cases.UNSUPPORTED[name]
            assert (result["checks"], result["not_checked"]) == ({}, {})
            continue
        # Every name of the row, each once, in checks or in not_checked; no other name.
        row = CHECKS_TABLE[name].split()
        assert sorted([*result["checks"], *result["not_checked"]]) == sorted(row), name
        assert result["not_checked"] == NOT_CHECKED.get(name, {}), name
        if name == "client_compressed_unary":
            assert (result["outcome"], result["message"]) == ("failed", PROBE_FAILURE)
            assert result["checks"] == {check: "passed" for check in result["checks"]} | {"probe.status_code": "failed"}
        else:
            assert (result["outcome"], result["message"]) == ("passed", ""), result
            assert set(result["checks"].values()) == {"passed"}, result


def test_order_of_all():
    names = cases.default_cases()
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
        "rpc_soak",
        "channel_soak",
    ]


def test_wrong_greeting_is_caught_with_every_failed_check():
    running = server.start_server(port=0, greeting="Howdy")
    try:
        ch = channels.make_channel("127.0.0.1", running.port)
        results = {r["case"]: r for r in run_all(ch, cases.default_cases()[:4])}
        ch.close()
    finally:
        running.stop(grace=0.5)
    assert all(r["outcome"] == "failed" for r in results.values())
    assert results["greeter_unary"]["message"] == 'SayHello message = "Howdy interop", want "Hello interop"'
    assert results["greeter_unary"]["checks"] == {"status": "passed", "message": "failed", "index": "passed"}
    assert results["greeter_server_streaming"]["checks"] == {
        "status": "passed",
        "reply_count": "passed",
        "message": "failed",
        "index": "passed",
    }
    streaming = results["greeter_server_streaming"]["message"].split("; ")
    assert len(streaming) == 5  # one per reply: a failed check does not stop the next
    assert streaming[0] == 'SayHelloStream reply 1 message = "Howdy interop (1 of 5)", want "Hello interop (1 of 5)"'
    assert results["greeter_bidi_streaming"]["message"].count("; ") == 3


def test_tls_end_to_end():
    cert_key = (read(os.path.join(TLS_DIR, "server.pem")), read(os.path.join(TLS_DIR, "server.key")))
    running = server.start_server(port=0, tls_cert_key=cert_key)
    try:
        credentials = channels.tls_credentials(read(os.path.join(TLS_DIR, "ca.pem")))
        new_channel = channels.channel_factory("localhost", running.port, credentials, "foo.test.google.fr")
        ch = new_channel()
        results = []
        client.run(
            ch,
            ["greeter_bidi_streaming", "large_unary", "custom_metadata", "ping_pong", "rpc_soak", "channel_soak"],
            results.append,
            new_channel,
        )
        ch.close()
    finally:
        running.stop(grace=0.5)
    assert [(r["outcome"], r["message"]) for r in results] == [("passed", "")] * 6


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
    ch = channels.make_channel("127.0.0.1", proxy.port)
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


def test_checks_record_every_failure_by_name():
    checks = cases.Checks()
    checks.equal("aggregated_size", "StreamingInputCall aggregated_payload_size", 74921, 74922)
    checks.payload("", "StreamingOutputCall response 1", cases._payload(2), 2)
    checks.payload("", "StreamingOutputCall response 2", messages_pb2.Payload(body=b"\x00\x01"), 2)
    checks.payload("", "StreamingOutputCall response 3", cases._payload(9), 9)
    checks.status("status_code", "FullDuplexCall", grpc.StatusCode.OK, None, grpc.StatusCode.CANCELLED)
    checks.status_message("unary.status_message", "UnaryCall", "a\tb", "a b")
    checks.equal("unary.echo_trailing", "UnaryCall trailing metadata x", b"\xab", b"\xab\xab\xab")
    checks.passed("status")
    checks.not_made("response_compressed", "cannot")
    assert checks.failures == [
        "StreamingInputCall aggregated_payload_size = 74921, want 74922",
        "StreamingOutputCall response 2 payload body has 1 non-zero bytes, want all zero",
        "FullDuplexCall status = OK (0), want CANCELLED (1)",
        'UnaryCall status message = "a\\tb", want "a b"',
        "UnaryCall trailing metadata x = 0xab, want 0xababab",
    ]
    assert checks.results == {
        "aggregated_size": "failed",
        "payload_size": "passed",
        # Made three times: failed because one instance failed, passed ones before and after it.
        "payload_body": "failed",
        "payload_type": "passed",
        "status_code": "failed",
        "unary.status_message": "failed",
        "unary.echo_trailing": "failed",
        "status": "passed",
    }
    assert checks.not_checked == {"response_compressed": "cannot"}


def test_payload_checks_do_not_stop_each_other():
    checks = cases.Checks()
    checks.payload("duplex.", "FullDuplexCall response", messages_pb2.Payload(type=1, body=b"\x07"), 2)
    assert checks.results == {
        "duplex.payload_size": "failed",
        "duplex.payload_body": "failed",
        "duplex.payload_type": "failed",
    }
    assert checks.failures == [
        "FullDuplexCall response payload size = 1, want 2",
        "FullDuplexCall response payload body has 1 non-zero bytes, want all zero",
        'FullDuplexCall response payload type = 1, want "COMPRESSABLE"',  # a PayloadType with no name
    ]


def test_exception_in_a_case_is_a_failed_status_check(monkeypatch, channel):
    def broken(ctx, checks):
        checks.fail("message", "first check")
        checks.passed("status")
        raise ValueError("boom")

    _replace_case(monkeypatch, "greeter_unary", broken)
    result = cases.run_case(cases.Context(channel), "greeter_unary")
    assert (result["outcome"], result["message"]) == ("failed", "first check; unexpected ValueError: boom")
    assert result["checks"] == {"status": "failed", "message": "failed"}


def test_exception_goes_to_the_first_status_like_check_of_the_row(monkeypatch, channel):
    def broken(ctx, checks):
        raise RuntimeError("boom")

    for name, first in (("custom_metadata", "unary.status"), ("client_compressed_unary", "probe.status_code")):
        _replace_case(monkeypatch, name, broken)
        result = cases.run_case(cases.Context(channel), name)
        assert (result["message"], result["checks"]) == ("unexpected RuntimeError: boom", {first: "failed"}), name


def test_check_names_outside_the_row_are_a_failed_result(monkeypatch, channel):
    def stray(ctx, checks):
        checks.passed("status")
        checks.passed("payload_size")

    _replace_case(monkeypatch, "empty_unary", stray)
    result = cases.run_case(cases.Context(channel), "empty_unary")
    assert result["outcome"] == "failed"
    assert result["message"] == "client bug: empty_unary made checks outside its row: payload_size"
    assert result["checks"] == {"status": "failed"}  # only names of the row appear


def test_a_passed_case_must_name_its_whole_row(monkeypatch, channel):
    _replace_case(monkeypatch, "large_unary", lambda ctx, checks: checks.passed("status"))
    result = cases.run_case(cases.Context(channel), "large_unary")
    assert result["outcome"] == "failed"
    assert result["message"] == "client bug: large_unary passed without checks payload_size, payload_body, payload_type"
    assert result["checks"] == {"status": "failed"}


def test_backstop_fails_a_case_whose_call_does_not_end(monkeypatch, channel):
    """A case still running RPC_TIMEOUT_S per call + BACKSTOP_S after it began fails;
    the client goes on with the next case."""
    release = threading.Event()

    def stuck(ctx, checks):
        checks.passed("unary.status")
        release.wait(30)  # a call grpcio never ends

    # Bound 2 * 0.5 + 0.1 s instead of 2 * 10 + 3 s; 0.5 s is still ample for the next case's call.
    monkeypatch.setattr(cases, "RPC_TIMEOUT_S", 0.5)
    monkeypatch.setattr(cases, "BACKSTOP_S", 0.1)
    _replace_case(monkeypatch, "custom_metadata", stuck)
    results = []
    try:
        status = client.run(channel, ["custom_metadata", "greeter_unary"], results.append)
    finally:
        release.set()
    stuck_result, next_result = results
    assert stuck_result["outcome"] == "failed"
    assert stuck_result["message"] == (
        "custom_metadata did not end within 1.1 s: grpcio did not end a call 0.1 s after its deadline"
    )
    assert stuck_result["checks"] == {"unary.status": "failed"}
    assert 1100 <= stuck_result["duration_ms"] < 5000
    assert (next_result["case"], next_result["outcome"]) == ("greeter_unary", "passed")
    assert status == client.EXIT_FAILED


def test_backstop_bound_counts_the_calls_of_a_case():
    assert cases.case_bound_s(cases.CASES["large_unary"]) == 13.0
    assert cases.case_bound_s(cases.CASES["custom_metadata"]) == 23.0
    assert cases.case_bound_s(cases.CASES["client_compressed_unary"]) == 33.0


def test_backstop_bound_of_a_soak_is_its_overall_timeout_plus_one_iteration():
    # Overall timeout + per-iteration maximum + BACKSTOP_S, with the defaults 10 s and 1000 ms ...
    for name in ("rpc_soak", "channel_soak"):
        assert cases.case_bound_s(cases.CASES[name]) == 14.0
        # ... and with the flags given.
        soak = cases.SoakOptions(overall_timeout_seconds=60, per_iteration_max_acceptable_latency_ms=2500)
        assert cases.case_bound_s(cases.CASES[name], soak) == 65.5


def _replace_case(monkeypatch, name, function):
    monkeypatch.setitem(cases.CASES, name, dataclasses.replace(cases.CASES[name], function=function))


@contextlib.contextmanager
def _serve(greeter=None, test_service=None, soak=None, new_channel=None):
    """A server with the given servicers (else the Python server's), and a Context
    over a channel to it, with a channel factory (`new_channel` wraps the real one)
    and the soak options `soak` (else the defaults)."""
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(greeter or server.GreeterServicer("Hello"), srv)
    test_pb2_grpc.add_TestServiceServicer_to_server(test_service or server.TestServiceServicer(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    factory = channels.channel_factory("127.0.0.1", port)
    ch = factory()
    try:
        yield cases.Context(ch, new_channel(factory) if new_channel else factory, soak or cases.SoakOptions())
    finally:
        ch.close()
        srv.stop(0.5).wait(2)


class _RecordingGreeter(server.GreeterServicer):
    """The Python server's Greeter, keeping the names each SayHelloChat received."""

    def __init__(self):
        super().__init__("Hello")
        self.chats: list[list[str]] = []

    def SayHelloChat(self, request_iterator, context):
        names: list[str] = []
        self.chats.append(names)
        for index, request in enumerate(request_iterator, start=1):
            names.append(request.name)
            yield helloworld_pb2.HelloReply(message=f"Hello {request.name}", index=index)


def test_bidi_names_carry_a_fresh_token_per_call():
    greeter = _RecordingGreeter()
    with _serve(greeter=greeter) as ctx:
        results = [cases.run_case(ctx, "greeter_bidi_streaming") for _ in range(2)]
    assert [r["outcome"] for r in results] == ["passed", "passed"], results
    tokens = []
    for names in greeter.chats:
        matches = [re.fullmatch(r"(alice|bob|carol|dave) ([0-9a-f]{8})", name) for name in names]
        assert all(matches), names
        assert [m[1] for m in matches] == ["alice", "bob", "carol", "dave"]
        assert len({m[2] for m in matches}) == 1, names  # one token per call
        tokens.append(matches[0][2])
    assert len(tokens) == 2 and tokens[0] != tokens[1]


class _GreeterWithoutTokens(server.GreeterServicer):
    """Answers each chat name from a script, as a server that answers before a name arrived must."""

    def SayHelloChat(self, request_iterator, context):
        for index, (_, name) in enumerate(zip(request_iterator, cases.GREETER_CHAT_NAMES, strict=False), start=1):
            yield helloworld_pb2.HelloReply(message=f"Hello {name}", index=index)


def test_bidi_reply_without_the_token_fails_message():
    with _serve(greeter=_GreeterWithoutTokens("Hello")) as ctx:
        result = cases.run_case(ctx, "greeter_bidi_streaming")
    assert result["outcome"] == "failed"
    assert result["checks"] == {"status": "passed", "reply_count": "passed", "message": "failed", "index": "passed"}
    assert result["message"].count("; ") == 3
    assert re.match(r'SayHelloChat reply 1 message = "Hello alice", want "Hello alice [0-9a-f]{8}"', result["message"])


class _CancellingTestService(server.TestServiceServicer):
    def FullDuplexCall(self, request_iterator, context):
        context.abort(grpc.StatusCode.CANCELLED, "aborted by the test server")


def test_timeout_on_sleeping_server_reports_the_status_grpcio_returned(monkeypatch):
    # A deadline far enough away that the server's CANCELLED surely comes first.
    monkeypatch.setattr(cases, "SLEEPING_SERVER_TIMEOUT_S", 5.0)
    with _serve(test_service=_CancellingTestService()) as ctx:
        result = cases.run_case(ctx, "timeout_on_sleeping_server")
    assert result["outcome"] == "failed"
    assert result["checks"] == {"status_code": "failed"}
    assert result["message"] == (
        'FullDuplexCall status = CANCELLED (1) "aborted by the test server", want DEADLINE_EXCEEDED (4)'
    )


class _CancelledAfterItsDeadline:
    """A FullDuplexCall that grpcio ends CANCELLED once its deadline has passed, as
    when the server's reset stream beats the client's own deadline timer."""

    def __init__(self, requests, timeout):
        self._timeout = timeout

    def __iter__(self):
        time.sleep(self._timeout + 0.05)
        return iter(())

    def code(self):
        return grpc.StatusCode.CANCELLED

    def details(self):
        return "Cancelled"


def test_cancelled_after_the_deadline_stays_cancelled():
    """The client never makes a status of its own: CANCELLED, even past the deadline, is CANCELLED."""
    ctx = types.SimpleNamespace(test=types.SimpleNamespace(FullDuplexCall=_CancelledAfterItsDeadline))
    result = cases.run_case(ctx, "timeout_on_sleeping_server")
    assert result["outcome"] == "failed"
    assert result["checks"] == {"status_code": "failed"}
    assert result["message"] == 'FullDuplexCall status = CANCELLED (1) "Cancelled", want DEADLINE_EXCEEDED (4)'


def test_parse_cases():
    assert client.parse_cases("all") == cases.default_cases()
    assert client.parse_cases("ping_pong, empty_unary") == ["ping_pong", "empty_unary"]
    assert client.parse_cases("http_404,goaway,mtls_accepted") == ["http_404", "goaway", "mtls_accepted"]
    with pytest.raises(Exception, match=r"unknown test case.*: nope"):
        client.parse_cases("empty_unary,nope")
    # Known names, but the bad client's: no client plays them.
    with pytest.raises(Exception, match=r"^held_streams_64: bad_input case\(s\), played by the bad client"):
        client.parse_cases("empty_unary,held_streams_64")


def test_manifest_lists_exactly_the_unsupported_cases():
    with open(os.path.join(REPO_ROOT, "implementations", "python.toml"), "rb") as f:
        manifest = tomllib.load(f)
    assert manifest["name"] == "python"
    assert manifest["version"] == grpc.__version__
    assert manifest["client"]["unsupported"] == cases.UNSUPPORTED
    assert manifest["server"]["unsupported"] == server.UNSUPPORTED


def test_manifest_groups_are_the_groups_played():
    with open(os.path.join(REPO_ROOT, "implementations", "python.toml"), "rb") as f:
        manifest = tomllib.load(f)
    # The client plays every group of its cases; the server serves the bad client's too.
    assert manifest["client"]["groups"] == list(dict.fromkeys(spec.group for spec in cases.CASES.values()))
    assert manifest["server"]["groups"] == ["greeter", "interop", "soak", "bad_input", "tls"]
    assert manifest["client"]["mtls"] == ["--use_client_cert"]
    assert manifest["server"]["mtls"] == ["--require_client_cert"]


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
        tls_args = ["--use_tls", "--use_test_ca", "--server_host_override", "foo.test.google.fr"] if tls else []
        done = _client(
            "--server_port",
            str(ready["port"]),
            "--test_case",
            "empty_unary,greeter_unary,client_compressed_streaming",
            *tls_args,
        )
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        # Ready first, one result per case in the order given, done last with their count.
        assert lines[0] == {"event": "ready"}
        assert lines[-1] == {"event": "done", "cases": 3}
        assert [(r["event"], r["case"], r["outcome"]) for r in lines[1:-1]] == [
            ("result", "empty_unary", "passed"),
            ("result", "greeter_unary", "passed"),
            ("result", "client_compressed_streaming", "unsupported"),
        ]
        assert lines[2]["checks"] == {"status": "passed", "message": "passed", "index": "passed"}
        failing = _client("--server_port", str(ready["port"]), "--test_case", "client_compressed_unary", *tls_args)
        assert failing.returncode == 1
        ready_line, result, done_line = (json.loads(line) for line in failing.stdout.splitlines())
        assert (ready_line, done_line) == ({"event": "ready"}, {"event": "done", "cases": 1})
        assert result["message"] == PROBE_FAILURE
        assert result["checks"]["probe.status_code"] == "failed"
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
    _assert_usage_error(_client("--server_port", "1", "--use_tls", "--use_test_ca", tls_dir="/nonexistent"), "ca.pem")
    _assert_usage_error(
        _client("--server_port", "1", "--use_tls", "--use_test_ca", "--ca_file", "/nonexistent/x.pem"), "x.pem"
    )
    _assert_usage_error(_client("--server_port", "1", "--use_tls=maybe"), "maybe")
    _assert_usage_error(_client("--server_port", "1", "--use_test_ca=maybe"), "maybe")
    # A bad_input case is the bad client's, not a client's.
    _assert_usage_error(_client("--server_port", "1", "--test_case", "streams_500"), "played by the bad client")
    # The old flag is gone.
    _assert_usage_error(_client("--server_port", "1", "--tls_ca_file", "ca.pem"), "--tls_ca_file")


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
    lines = done.stdout.splitlines(keepends=True)
    assert len(lines) == 4
    assert lines[0] == '{"event":"ready"}\n'
    assert [json.loads(line)["case"] for line in lines[1:3]] == ["empty_unary", "greeter_unary"]
    assert lines[3] == '{"event":"done","cases":2}\n'
    # The file: the result lines and the done line, byte for byte as on stdout; no ready line.
    assert path.read_text() == "".join(lines[1:])


def test_result_file_that_cannot_be_created_is_a_usage_error(tmp_path):
    _assert_usage_error(
        _client("--server_port", "1", "--result_file", str(tmp_path / "no" / "such.jsonl")), "cannot create result file"
    )


# --- the TLS flags ----------------------------------------------------------------------


def test_client_flag_defaults():
    args = client._parse_args(["--server_port", "1"])
    assert (args.server_host, args.test_case, args.use_tls, args.use_test_ca) == ("localhost", "all", False, False)
    assert args.ca_file is None  # read as $INTEROP_TLS_DIR/ca.pem, and only with --use_tls --use_test_ca
    assert args.server_host_override == ""
    assert client.soak_options(args) == cases.SoakOptions(
        iterations=10,
        max_failures=0,
        per_iteration_max_acceptable_latency_ms=1000,
        overall_timeout_seconds=10,
        min_time_ms_between_rpcs=0,
        num_threads=1,
    )


def test_server_host_override_defaults_to_server_host():
    assert client.server_name(client._parse_args(["--server_port", "1"])) == "localhost"
    assert client.server_name(client._parse_args(["--server_port", "1", "--server_host", "127.0.0.1"])) == "127.0.0.1"
    given = client._parse_args(["--server_port", "1", "--server_host", "127.0.0.1", "--server_host_override", "x.y"])
    assert client.server_name(given) == "x.y"


@pytest.mark.parametrize(("flags", "want"), [([], False), (["--use_test_ca"], True), (["--use_test_ca=true"], True)])
def test_use_test_ca_is_a_bool_flag(flags, want):
    assert client._parse_args(["--server_port", "1", *flags]).use_test_ca is want
    assert client._parse_args(["--server_port", "1", *flags, "--use_test_ca=false"]).use_test_ca is False


@pytest.fixture(scope="module")
def tls_server_port():
    proc, ready = _start_server("--use_tls")
    yield ready["port"]
    assert _stop(proc) == 0


def _tls_large_unary(port, *flags, tls_dir=TLS_DIR) -> dict:
    done = _client("--server_port", str(port), "--use_tls", *flags, "--test_case", "large_unary", tls_dir=tls_dir)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == (0 if lines[1]["outcome"] == "passed" else 1), done.stderr
    return lines[1]


def test_use_test_ca_trusts_the_test_ca(tls_server_port):
    # No override: the server is verified as --server_host, localhost (in the certificate).
    assert _tls_large_unary(tls_server_port, "--use_test_ca")["outcome"] == "passed"
    assert _tls_large_unary(tls_server_port, "--use_test_ca", "--server_host", "127.0.0.1")["outcome"] == "passed"
    assert (
        _tls_large_unary(tls_server_port, "--use_test_ca", "--server_host_override", "foo.test.google.fr")["outcome"]
        == "passed"
    )
    # --ca_file is the CA trusted, not $INTEROP_TLS_DIR/ca.pem.
    ca_file = os.path.join(TLS_DIR, "ca.pem")
    assert (
        _tls_large_unary(tls_server_port, "--use_test_ca", "--ca_file", ca_file, tls_dir="/nonexistent")["outcome"]
        == "passed"
    )


def test_the_override_is_the_name_verified(tls_server_port):
    result = _tls_large_unary(tls_server_port, "--use_test_ca", "--server_host_override", "not-in-the.cert")
    assert result["outcome"] == "failed"
    assert result["message"].startswith("UnaryCall status = UNAVAILABLE (14) "), result


@pytest.mark.parametrize("flags", [[], ["--use_test_ca=false"]])
def test_without_use_test_ca_the_system_roots_do_not_trust_the_test_ca(tls_server_port, flags):
    result = _tls_large_unary(tls_server_port, *flags)
    assert result["outcome"] == "failed"
    assert result["checks"] == {"status": "failed"}
    assert result["message"].startswith("UnaryCall status = UNAVAILABLE (14) "), result
    assert "CERTIFICATE_VERIFY_FAILED" in result["message"]


# --- the soak cases ---------------------------------------------------------------------


def _assert_metrics(metrics: dict, iterations: int, failures: int):
    assert list(metrics) == METRIC_KEYS[: 2 if failures == iterations else 6]
    assert (metrics["iterations"], metrics["failures"]) == (iterations, failures)
    latencies = [metrics[key] for key in METRIC_KEYS[2:] if key in metrics]
    assert latencies == sorted(latencies)
    assert all(isinstance(x, float) and x > 0 and round(x, 3) == x for x in latencies)


@pytest.mark.parametrize("name", ["rpc_soak", "channel_soak"])
def test_soak_passes_against_own_server(running_server, name):
    new_channel = channels.channel_factory("localhost", running_server.port)
    ch = new_channel()
    results = []
    try:
        status = client.run(ch, [name], results.append, new_channel)
    finally:
        ch.close()
    (result,) = results
    assert status == client.EXIT_OK
    assert list(result) == SOAK_RESULT_KEYS
    assert (result["outcome"], result["message"]) == ("passed", ""), result
    assert result["checks"] == {"completed": "passed", "failures": "passed"}
    assert result["not_checked"] == {}
    _assert_metrics(result["metrics"], 10, 0)


class _PeerRecorder(server.TestServiceServicer):
    """Keeps the peer address of each UnaryCall: one connection is one client port."""

    def __init__(self):
        self.peers: list[str] = []

    def UnaryCall(self, request, context):
        self.peers.append(context.peer())
        return super().UnaryCall(request, context)


class _ClosingRecorder:
    """A channel factory keeping every channel it made, and which of them were closed."""

    def __init__(self, factory):
        self._factory = factory
        self.made = 0
        self.closed = 0

    def __call__(self):
        self.made += 1
        recorder = self

        class Channel:
            def __init__(self, real):
                self._real = real

            def __getattr__(self, name):
                return getattr(self._real, name)

            def close(self):
                recorder.closed += 1
                self._real.close()

        return Channel(self._factory())


def test_channel_soak_makes_and_closes_a_channel_per_iteration():
    recorders = []

    def wrap(factory):
        recorders.append(_ClosingRecorder(factory))
        return recorders[-1]

    for name, want_made, want_peers in (("rpc_soak", 0, 1), ("channel_soak", 10, 10)):
        service = _PeerRecorder()
        with _serve(test_service=service, new_channel=wrap) as ctx:
            result = cases.run_case(ctx, name)
        assert result["outcome"] == "passed", result
        assert len(service.peers) == 10
        # rpc_soak: the client's channel, one connection; channel_soak: a channel,
        # so a connection, per iteration, each closed after its call.
        assert len(set(service.peers)) == want_peers, (name, service.peers)
        assert (recorders[-1].made, recorders[-1].closed) == (want_made, want_made), name


class _EveryOtherCallFails(server.TestServiceServicer):
    def __init__(self):
        self._calls = 0
        self._lock = threading.Lock()

    def UnaryCall(self, request, context):
        with self._lock:
            self._calls += 1
            failing = self._calls % 2 == 0
        if failing:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "every other call fails")
        return super().UnaryCall(request, context)


FAILED_ITERATION = 'UnaryCall status = RESOURCE_EXHAUSTED (8) "every other call fails", want OK'


@pytest.mark.parametrize("name", ["rpc_soak", "channel_soak"])
def test_soak_against_a_server_failing_every_other_call(name):
    with _serve(test_service=_EveryOtherCallFails()) as ctx:
        result = cases.run_case(ctx, name)
    assert result["outcome"] == "failed"
    assert result["checks"] == {"completed": "passed", "failures": "failed"}
    # Iterations 2, 4, ... failed; the first three are listed.
    assert result["message"] == (
        f"{name}: 5 of 10 iterations failed, want at most 0: iteration 2: {FAILED_ITERATION}; "
        f"iteration 4: {FAILED_ITERATION}; iteration 6: {FAILED_ITERATION}; and 2 more"
    )
    _assert_metrics(result["metrics"], 10, 5)  # latencies of the 5 that succeeded


def test_soak_max_failures_allows_that_many():
    with _serve(test_service=_EveryOtherCallFails(), soak=cases.SoakOptions(iterations=4, max_failures=2)) as ctx:
        result = cases.run_case(ctx, "rpc_soak")
    assert (result["outcome"], result["message"]) == ("passed", ""), result
    assert result["checks"] == {"completed": "passed", "failures": "passed"}
    _assert_metrics(result["metrics"], 4, 2)


class _FakeUnary:
    """A UnaryCall that ignores its deadline: returns a response after `delay_s`."""

    def __init__(self, delay_s, payload):
        self.delay_s = delay_s
        self.payload = payload
        self.timeouts = []

    def __call__(self, request, timeout):
        self.timeouts.append(timeout)
        time.sleep(self.delay_s)
        return messages_pb2.SimpleResponse(payload=self.payload)


def _fake_ctx(unary, **soak):
    return types.SimpleNamespace(test=types.SimpleNamespace(UnaryCall=unary), soak=cases.SoakOptions(**soak))


def test_slow_or_wrong_response_fails_its_iteration():
    slow = _FakeUnary(0.08, cases._payload(cases.LARGE_RESPONSE_SIZE))
    result = cases.run_case(_fake_ctx(slow, iterations=2, per_iteration_max_acceptable_latency_ms=50), "rpc_soak")
    assert slow.timeouts == [0.05, 0.05]  # the deadline is the per-iteration maximum
    assert result["outcome"] == "failed"
    assert re.fullmatch(
        r"rpc_soak: 2 of 2 iterations failed, want at most 0: "
        r"iteration 1: took \d+\.\d ms, want at most 50 ms; iteration 2: took \d+\.\d ms, want at most 50 ms",
        result["message"],
    ), result["message"]
    assert result["metrics"] == {"iterations": 2, "failures": 2}  # no latency: none succeeded

    wrong = _FakeUnary(0, messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\x01"))
    result = cases.run_case(_fake_ctx(wrong, iterations=1), "rpc_soak")
    assert result["message"] == (
        "rpc_soak: 1 of 1 iterations failed, want at most 0: iteration 1: "
        "UnaryCall response payload size = 1, want 314159 and "
        "UnaryCall response payload body has 1 non-zero bytes, want all zero"
    )


def test_no_iteration_starts_after_the_overall_timeout():
    # Starts at 0 s and 0.6 s; the third would start at 1.2 s, after the 1 s timeout.
    soak = cases.SoakOptions(iterations=5, overall_timeout_seconds=1, min_time_ms_between_rpcs=600)
    with _serve(soak=soak) as ctx:
        result = cases.run_case(ctx, "rpc_soak")
    assert result["outcome"] == "failed"
    assert result["checks"] == {"completed": "failed", "failures": "passed"}
    assert result["message"] == "rpc_soak: 2 of 5 iterations ran within the overall timeout of 1 s, want all 5"
    _assert_metrics(result["metrics"], 2, 0)
    assert result["duration_ms"] < 1000  # it did not wait for a start it would not make


def test_min_time_between_rpcs_spaces_the_starts():
    with _serve(soak=cases.SoakOptions(iterations=3, min_time_ms_between_rpcs=200)) as ctx:
        result = cases.run_case(ctx, "rpc_soak")
    assert result["outcome"] == "passed", result
    assert result["duration_ms"] >= 400  # starts at 0, 200 and 400 ms at the earliest


class _ConcurrencyRecorder(server.TestServiceServicer):
    """UnaryCall takes 100 ms; keeps the most calls in flight at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self.most = 0

    def UnaryCall(self, request, context):
        with self._lock:
            self._in_flight += 1
            self.most = max(self.most, self._in_flight)
        time.sleep(0.1)
        with self._lock:
            self._in_flight -= 1
        return super().UnaryCall(request, context)


def test_soak_num_threads_workers_run_at_once():
    service = _ConcurrencyRecorder()
    with _serve(test_service=service, soak=cases.SoakOptions(iterations=6, num_threads=3)) as ctx:
        result = cases.run_case(ctx, "channel_soak")
    assert result["outcome"] == "passed", result
    _assert_metrics(result["metrics"], 6, 0)
    assert service.most == 3
    assert result["duration_ms"] < 6 * 100  # three at a time, not one after the other


def test_backstop_fails_a_soak_whose_call_does_not_end(monkeypatch):
    """A soak case is bounded by overall timeout + per-iteration maximum + BACKSTOP_S."""
    monkeypatch.setattr(cases, "BACKSTOP_S", 0.1)
    stuck = _FakeUnary(5, cases._payload(cases.LARGE_RESPONSE_SIZE))  # ignores its 0.5 s deadline
    ctx = _fake_ctx(stuck, iterations=1, overall_timeout_seconds=1, per_iteration_max_acceptable_latency_ms=500)
    result = cases.run_case(ctx, "rpc_soak")
    assert result["outcome"] == "failed"
    assert result["message"] == (
        "rpc_soak did not end within 1.6 s: grpcio did not end a call 0.1 s after its deadline"
    )
    assert result["checks"] == {"completed": "failed"}  # the soak row has no status check
    assert 1600 <= result["duration_ms"] < 4000


def test_channel_soak_without_a_channel_factory_fails_completed(channel):
    result = cases.run_case(cases.Context(channel), "channel_soak")
    assert result["outcome"] == "failed"
    assert result["message"] == "unexpected RuntimeError: channel_soak needs a channel factory (Context.new_channel)"
    assert result["checks"] == {"completed": "failed"}


def test_nearest_rank_percentiles():
    one_to_ten = [float(x) for x in range(1, 11)]
    assert [cases.nearest_rank(one_to_ten, p) for p in (1, 10, 11, 50, 90, 99, 100)] == [1, 1, 2, 5, 9, 10, 10]
    # The textbook example: 15 20 35 40 50.
    five = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [cases.nearest_rank(five, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    assert [cases.nearest_rank([7.5], p) for p in (1, 50, 99, 100)] == [7.5] * 4
    # Exact ranks: 7 / 100 * 100 is 7.000000000000001 in floats, and its ceiling 8.
    assert cases.nearest_rank([float(x) for x in range(1, 101)], 7) == 7
    with pytest.raises(ValueError):
        cases.nearest_rank([], 50)


def test_soak_metrics_round_to_three_decimals():
    assert cases.soak_metrics(4, 1, [2.00049, 1.0, 3.1234567]) == {
        "iterations": 4,
        "failures": 1,
        "latency_ms_p50": 2.0,
        "latency_ms_p90": 3.123,
        "latency_ms_p99": 3.123,
        "latency_ms_max": 3.123,
    }
    assert cases.soak_metrics(3, 3, []) == {"iterations": 3, "failures": 3}


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--soak_iterations", "0"], "--soak_iterations: 0, want a positive number"),
        (["--soak_iterations", "-3"], "--soak_iterations: -3, want a positive number"),
        (["--soak_num_threads", "0"], "--soak_num_threads: 0, want a positive number"),
        (["--soak_num_threads", "3"], "--soak_iterations: 10 is not divisible by --soak_num_threads 3"),
        (["--soak_max_failures", "-1"], "--soak_max_failures: -1, want a non-negative number"),
        (["--soak_per_iteration_max_acceptable_latency_ms", "-1"], "want a non-negative number"),
        (["--soak_overall_timeout_seconds", "-1"], "want a non-negative number"),
        (["--soak_min_time_ms_between_rpcs", "-1"], "want a non-negative number"),
        (["--soak_iterations", "x"], "--soak_iterations"),
    ],
)
def test_soak_flag_usage_errors(flags, fragment):
    _assert_usage_error(_client("--server_port", "1", "--test_case", "rpc_soak", *flags), fragment)


def test_soak_flags_reach_the_cases(running_server):
    done = _client(
        "--server_port",
        str(running_server.port),
        "--test_case",
        "rpc_soak,channel_soak",
        "--soak_iterations",
        "4",
        "--soak_num_threads",
        "2",
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["event"] for line in lines] == ["ready", "result", "result", "done"]
    for line in lines[1:3]:
        assert line["outcome"] == "passed", line
        _assert_metrics(line["metrics"], 4, 0)


def test_every_channel_has_connections_of_its_own(monkeypatch):
    """Without grpc.use_local_subchannel_pool, a new channel can reuse the
    connection of one just closed (C-core's global subchannel pool)."""
    made = []
    monkeypatch.setattr(grpc, "insecure_channel", lambda target, options=None: made.append((target, options)))
    monkeypatch.setattr(grpc, "secure_channel", lambda target, creds, options=None: made.append((target, options)))
    new_channel = channels.channel_factory("::1", 5, None)
    new_channel()
    channels.make_channel("h", 6, channels.tls_credentials(None))
    channels.make_channel("h", 7, channels.tls_credentials(None), "x.y")
    assert made == [
        ("[::1]:5", [("grpc.use_local_subchannel_pool", 1)]),
        ("h:6", [("grpc.use_local_subchannel_pool", 1)]),
        ("h:7", [("grpc.use_local_subchannel_pool", 1), ("grpc.ssl_target_name_override", "x.y")]),
    ]
