"""The http2_negative and wire cases: their table against the contract, and their
calls against a stand-in for the bad server (a grpcio server that answers each
call as its x-interop-case says, as far as a gRPC library can answer)."""

import contextlib
import dataclasses
import os
import re
import threading
import time
from concurrent import futures

import grpc
import pytest
from conftest import REPO_ROOT

from interop import cases, channels, client
from interop._gen import messages_pb2

HTTP2_NEGATIVE = [
    "goaway",
    "rst_after_header",
    "rst_during_data",
    "rst_after_data",
    "ping",
    "max_streams",
    "data_frame_padding",
    "no_df_padding_sanity_test",
]


def _contract() -> str:
    with open(os.path.join(REPO_ROOT, "implementations", "CONTRACT.md"), encoding="utf-8") as f:
        return f.read()


def _contract_wire_table() -> dict[str, tuple[str, int]]:
    """The wire table of CONTRACT.md: case -> (code name, code number) of its last column."""
    section = _contract().split("#### `wire`", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `(\w+)` \| .* \| ([A-Z_]+) \((\d+)\) \|", line)
        if match:
            rows[match[1]] = (match[2], int(match[3]))
    return rows


def test_wire_codes_are_the_contract_s():
    table = _contract_wire_table()
    assert len(table) == 20
    assert {name: (row.code.name, row.code.value[0]) for name, row in cases.WIRE_CASES.items()} == table
    # In the contract's order, which is the catalogue's.
    assert list(cases.WIRE_CASES) == list(table)


def test_the_wire_deadlines_are_the_contracts():
    assert "reads the request and never answers; the call's deadline is **1 s**" in _contract()
    assert "The call's deadline is\n**3 s**" in _contract()
    assert {name: row.timeout_s for name, row in cases.WIRE_CASES.items() if row.timeout_s != 3.0} == {
        "silent_server": 1.0
    }
    assert cases.CASES["silent_server"].timeout == 1.0
    assert cases.CASES["http_404"].timeout == 3.0


def test_groups_and_backstop_bounds():
    groups = {}
    for name, spec in cases.CASES.items():
        groups.setdefault(spec.group, []).append(name)
    assert list(groups) == ["greeter", "interop", "soak", "http2_negative", "wire", "tls"]
    assert groups["http2_negative"] == HTTP2_NEGATIVE
    assert groups["wire"] == list(cases.WIRE_CASES)
    assert len(groups["tls"]) == 5
    # Deadline per call one after the other, pauses, and the backstop.
    assert cases.case_bound_s(cases.CASES["goaway"]) == 2 * 10 + 1 + 3
    assert cases.case_bound_s(cases.CASES["max_streams"]) == 2 * 10 + 3
    assert cases.case_bound_s(cases.CASES["silent_server"]) == 1 + 3
    assert cases.case_bound_s(cases.CASES["http_503"]) == 3 + 3
    assert cases.case_bound_s(cases.CASES["mtls_accepted"]) == 10 + 3


def _rust_catalogue() -> list[str]:
    """The case names of src/cases.rs, in the order of its `enum Case`: each
    variant in snake_case (strum's serialize_all), or as its own `serialize`."""
    with open(os.path.join(REPO_ROOT, "src", "cases.rs"), encoding="utf-8") as f:
        source = f.read()
    body = source.split("pub enum Case {", 1)[1].split("\n}", 1)[0]
    names, override = [], None
    for line in (raw.strip() for raw in body.splitlines()):
        if match := re.fullmatch(r'#\[strum\(serialize = "(\w+)"\)\]', line):
            override = match[1]
        elif match := re.fullmatch(r"([A-Z]\w*),", line):
            names.append(override or re.sub(r"(?<!^)(?=[A-Z])", "_", match[1]).lower())
            override = None
    return names


def test_catalogue_is_the_rust_catalogue():
    rust = _rust_catalogue()
    assert len(rust) > 60 and rust[:2] == ["greeter_unary", "greeter_server_streaming"]
    assert list(cases.CATALOGUE) == rust
    assert list(cases.CASES) == [name for name in rust if name not in cases.BAD_INPUT_CASES]


# --- against a stand-in bad server ------------------------------------------------------


class _Call:
    """One UnaryCall the stand-in received."""

    def __init__(self, case: str | None, peer: str):
        self.case = case
        self.peer = peer
        self.start = time.monotonic()


class StandIn:
    """A grpcio server whose UnaryCall does what `answers[<x-interop-case>]` does
    (a function of the request and the context returning the response, or a
    list of responses), and records every call.

    Its UnaryCall is a bidirectional-streaming handler, the same on the wire,
    so that it can answer with no response message or with two."""

    def __init__(self, answers):
        self.answers = answers
        self.calls: list[_Call] = []
        self.most_at_once = 0
        self._at_once = 0
        self._lock = threading.Lock()

    def unary_call(self, request_iterator, context):
        request = next(request_iterator)
        metadata = dict(context.invocation_metadata())
        call = _Call(metadata.get(cases.CASE_METADATA_KEY), context.peer())
        with self._lock:
            self.calls.append(call)
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            answer = self.answers[call.case](request, context)
            yield from answer if isinstance(answer, list) else [answer]
        finally:
            with self._lock:
                self._at_once -= 1


def _large_response(request, context):
    return messages_pb2.SimpleResponse(
        payload=messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(request.response_size))
    )


def _abort(code, details="from the stand-in"):
    def answer(request, context):
        context.abort(code, details)

    return answer


def _slow(seconds, answer=_large_response):
    def slow(request, context):
        time.sleep(seconds)
        return answer(request, context)

    return slow


def _wants(name: str):
    """What the contract wants of each case, as a gRPC library can answer it."""
    if name in cases.WIRE_CASES:
        if name == "silent_server":
            return _slow(3)
        return _abort(cases.WIRE_CASES[name].code)
    if name.startswith("rst_"):
        return _abort(grpc.StatusCode.INTERNAL, "stream reset")
    if name == "max_streams":
        return _slow(0.1)  # long enough for the 10 calls to overlap
    return _large_response


class _Closing:
    """A channel factory counting the channels made and closed."""

    def __init__(self, factory):
        self._factory = factory
        self.made = self.closed = 0

    def __call__(self):
        self.made += 1
        counter = self

        class Channel:
            def __init__(self, real):
                self._real = real

            def __getattr__(self, name):
                return getattr(self._real, name)

            def close(self):
                counter.closed += 1
                self._real.close()

        return Channel(self._factory())


@contextlib.contextmanager
def _stand_in(answers):
    """A stand-in serving `answers`, and a Context whose channel factory counts its channels."""
    stand_in = StandIn(answers)
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.stream_stream_rpc_method_handler(
        stand_in.unary_call,
        request_deserializer=messages_pb2.SimpleRequest.FromString,
        response_serializer=messages_pb2.SimpleResponse.SerializeToString,
    )
    srv.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("grpc.testing.TestService", {"UnaryCall": handler}),)
    )
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    factory = _Closing(channels.channel_factory("127.0.0.1", port))
    channel = channels.make_channel("127.0.0.1", port)
    try:
        yield stand_in, cases.Context(channel, factory), factory
    finally:
        channel.close()
        srv.stop(0.5).wait(2)


ROW = {name: cases.CASES[name].checks for name in [*HTTP2_NEGATIVE, *cases.WIRE_CASES]}
CALLS = {"goaway": 2, "max_streams": 1 + cases.MAX_STREAMS_CONCURRENT}


@pytest.mark.parametrize("name", list(ROW))
def test_each_case_passes_against_the_answer_it_wants(name):
    with _stand_in({name: _wants(name)}) as (stand_in, ctx, factory):
        result = cases.run_case(ctx, name)
    assert (result["outcome"], result["message"]) == ("passed", ""), result
    assert result["checks"] == dict.fromkeys(ROW[name], "passed")
    # Every call over a channel of the case's own, closed after, and marked with the case.
    assert (factory.made, factory.closed) == (1, 1)
    assert [call.case for call in stand_in.calls] == [name] * CALLS.get(name, 1)


@pytest.mark.parametrize("name", list(cases.WIRE_CASES))
def test_wire_case_reports_the_code_and_details_that_came_back(name):
    wrong = grpc.StatusCode.DATA_LOSS
    with _stand_in({name: _abort(wrong, "not the wanted one")}) as (_, ctx, _factory):
        result = cases.run_case(ctx, name)
    want = cases.WIRE_CASES[name].code
    assert result["outcome"] == "failed"
    assert result["checks"] == {"status_code": "failed"}
    assert result["message"] == (
        f'UnaryCall status = DATA_LOSS (15) "not the wanted one", want {want.name} ({want.value[0]})'
    )


def test_a_wire_case_answered_ok_fails():
    with _stand_in({"http_404": _large_response}) as (_, ctx, _factory):
        result = cases.run_case(ctx, "http_404")
    assert result["message"] == "UnaryCall status = OK (0), want UNIMPLEMENTED (12)"


def test_ok_without_a_response_message_says_so():
    """grpcio ends a unary call answered with no message and grpc-status 0 as OK,
    and returns None: reported as it is, OK, and what is missing."""
    with _stand_in({"no_response": lambda request, context: [], "ping": lambda request, context: []}) as (_, ctx, _f):
        no_response = cases.run_case(ctx, "no_response")
        ping = cases.run_case(ctx, "ping")
    assert no_response["message"] == "UnaryCall status = OK (0) and no response message, want UNIMPLEMENTED (12)"
    assert ping["checks"] == {"status": "passed", "payload_size": "failed"}
    assert ping["message"] == ("UnaryCall status = OK (0) and no response message, want a payload of 314159 bytes")


def test_two_responses_are_reported_as_grpcio_ends_the_call(monkeypatch):
    """grpcio never reads a second response message of a unary call, so the call
    ends at its deadline: DEADLINE_EXCEEDED, reported as such, not made into the
    code the case wants. (The deadline is shortened from 3 s for the test.)"""
    monkeypatch.setitem(cases.CASES, "two_responses", dataclasses.replace(cases.CASES["two_responses"], timeout_s=1.0))

    def two(request, context):
        return [_large_response(request, context)] * 2

    with _stand_in({"two_responses": two}) as (_, ctx, _factory):
        result = cases.run_case(ctx, "two_responses")
    assert result["outcome"] == "failed"
    assert re.fullmatch(
        r'UnaryCall status = DEADLINE_EXCEEDED \(4\) ".+", want UNIMPLEMENTED \(12\)', result["message"]
    )
    assert 1000 <= result["duration_ms"] < 2500


def test_silent_server_waits_one_second_for_grpcio_s_deadline():
    with _stand_in({"silent_server": _slow(3)}) as (_, ctx, _factory):
        result = cases.run_case(ctx, "silent_server")
    assert result["outcome"] == "passed", result
    # grpcio ended the call at its 1 s deadline; the client made no status of its own.
    assert 1000 <= result["duration_ms"] < 2500


@pytest.mark.parametrize("name", ["rst_after_header", "rst_during_data", "rst_after_data"])
def test_an_rst_case_answered_ok_fails(name):
    with _stand_in({name: _large_response}) as (_, ctx, _factory):
        result = cases.run_case(ctx, name)
    assert result["outcome"] == "failed"
    assert result["checks"] == {"not_ok": "failed"}
    assert result["message"] == "UnaryCall status = OK (0), want any status but OK"


def test_goaway_makes_two_calls_a_second_apart_and_checks_both():
    answers = iter([_abort(grpc.StatusCode.UNAVAILABLE, "refused"), _large_response])
    with _stand_in({"goaway": lambda request, context: next(answers)(request, context)}) as (stand_in, ctx, _f):
        result = cases.run_case(ctx, "goaway")
    first, second = stand_in.calls
    assert second.start - first.start >= cases.GOAWAY_PAUSE_S
    # A failed first call does not stop the second.
    assert result["checks"] == {"first.status": "failed", "second.status": "passed", "second.payload_size": "passed"}
    assert result["message"] == 'first UnaryCall status = UNAVAILABLE (14) "refused", want OK (0)'


def test_max_streams_sends_ten_calls_at_once_and_checks_every_one():
    calls = {"n": 0}
    lock = threading.Lock()
    # Calls 2 to 11 are answered only once all ten are in: they really are at once
    # (a client sending them one after the other would break the barrier).
    together = threading.Barrier(cases.MAX_STREAMS_CONCURRENT, timeout=5)

    def every_third_untyped(request, context):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n > 1:
            together.wait()
        response = _large_response(request, context)
        if n % 3 == 0:
            response.payload.type = 7  # a PayloadType with no name
        return response

    with _stand_in({"max_streams": every_third_untyped}) as (stand_in, ctx, _factory):
        result = cases.run_case(ctx, "max_streams")
    assert len(stand_in.calls) == 11
    assert stand_in.most_at_once == cases.MAX_STREAMS_CONCURRENT
    assert result["checks"] == {"status": "passed", "payload_size": "passed", "payload_type": "failed"}
    failures = result["message"].split("; ")
    assert len(failures) == 3  # the 3rd, 6th and 9th to arrive of the 11
    assert all(
        re.fullmatch(r'UnaryCall \d+ \(one of 10 at once\) response payload type = 7, want "COMPRESSABLE"', f)
        for f in failures
    )


def test_padding_cases_check_the_body():
    def nonzero(request, context):
        response = _large_response(request, context)
        response.payload.body = b"\x01" + response.payload.body[1:]
        return response

    with _stand_in({"data_frame_padding": nonzero}) as (_, ctx, _factory):
        result = cases.run_case(ctx, "data_frame_padding")
    assert result["checks"] == {"status": "passed", "payload_size": "passed", "payload_body": "failed"}
    assert result["message"] == "UnaryCall response payload body has 1 non-zero bytes, want all zero"


def test_each_case_connects_anew():
    """A channel of its own is a connection of its own: two cases, two client ports."""
    with _stand_in({"ping": _large_response, "http_400": _abort(grpc.StatusCode.INTERNAL)}) as (stand_in, ctx, _f):
        results = []
        client.run(ctx.channel, ["ping", "http_400", "ping"], results.append, ctx.new_channel)
    assert [r["outcome"] for r in results] == ["passed"] * 3
    assert len({call.peer for call in stand_in.calls}) == 3


def test_without_a_channel_factory_the_case_fails_saying_so(channel):
    result = cases.run_case(cases.Context(channel), "http_503")
    assert result["outcome"] == "failed"
    assert result["message"] == "unexpected RuntimeError: http_503 needs a channel factory (Context.new_channel)"
    assert result["checks"] == {"status_code": "failed"}
