"""The client cases of implementations/CONTRACT.md, one function per case.

Each case function takes a `Context` (the stubs) and a `Checks` (where failed
checks are recorded) and returns nothing: a failed check never stops the next
one, and `run_case` turns the recorded failures, or an unexpected exception,
into one result.
"""

import json
import queue
import time
from dataclasses import dataclass, field

import grpc

from interop._gen import empty_pb2, helloworld_pb2, helloworld_pb2_grpc, messages_pb2, test_pb2_grpc

# The numbers of the public interop test description.
LARGE_REQUEST_SIZE = 271828
LARGE_RESPONSE_SIZE = 314159
STREAM_REQUEST_SIZES = (27182, 8, 1828, 45904)
STREAM_RESPONSE_SIZES = (31415, 9, 2653, 58979)
STREAM_AGGREGATED_SIZE = 74922
COMPRESSED_STREAM_REQUEST_SIZES = (27182, 45904)
COMPRESSED_STREAM_AGGREGATED_SIZE = 73086
COMPRESSED_STREAM_RESPONSE_SIZES = (31415, 92653)

ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_INITIAL_VALUE = "test_initial_metadata_value"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
ECHO_TRAILING_VALUE = b"\xab\xab\xab"
STATUS_MESSAGE = "test status message"
SPECIAL_STATUS_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
GREETER_NAME = "interop"
GREETER_STREAM_COUNT = 5
GREETER_NAMES = ("alice", "bob", "carol")
GREETER_CHAT_NAMES = ("alice", "bob", "carol", "dave")

# Every RPC has a deadline so that a client never waits forever on a server;
# 10 s is far above what any case needs on loopback, even on a loaded CI machine.
RPC_TIMEOUT_S = 10.0
# timeout_on_sleeping_server wants the deadline to expire while the call is open.
SLEEPING_SERVER_TIMEOUT_S = 0.001

UNSUPPORTED = {
    "client_compressed_streaming": (
        "grpcio cannot send one message of a client stream compressed and the next uncompressed: "
        "compression is chosen per call (compression=), and grpcio sends every request message with "
        "write flags 0 (no per-message no-compress control, unlike the server's disable_next_message_compression)"
    ),
}
"""Cases this client cannot express with grpcio, and why. The manifest
(implementations/python.toml, [client.unsupported]) lists the same."""


# --- results and checks -----------------------------------------------------------------


def show(value) -> str:
    """How a value appears in a failure message: strings quoted, bytes in hex."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex() if value else '""'
    return str(value)


def status_text(code: grpc.StatusCode | None, details: str | None = None) -> str:
    """A status as `NAME (n)` followed by its quoted message when there is one."""
    if code is None:
        return "no status"
    text = f"{code.name} ({code.value[0]})"
    return f"{text} {show(details)}" if details else text


class Checks:
    """Collects the failed checks of one case, each saying what was called,
    what came back and what was wanted."""

    def __init__(self):
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def equal(self, what: str, got, want) -> bool:
        """Record `<what> = <got>, want <want>` unless they are equal."""
        if got == want:
            return True
        self.fail(f"{what} = {show(got)}, want {show(want)}")
        return False

    def payload(self, what: str, payload: messages_pb2.Payload, size: int) -> None:
        """The payload is `size` zero bytes of type COMPRESSABLE."""
        body = payload.body
        if self.equal(f"{what} payload size", len(body), size) and body.count(0) != size:
            self.fail(f"{what} payload body has {size - body.count(0)} non-zero bytes, want all zero")
        self.equal(f"{what} payload type", messages_pb2.PayloadType.Name(payload.type), "COMPRESSABLE")

    def rpc_error(self, what: str, error: grpc.RpcError) -> None:
        """An RPC that should have succeeded failed."""
        self.fail(f"{what} status = {status_text(error.code(), error.details())}, want OK")

    def status(
        self, what: str, code: grpc.StatusCode | None, details: str | None, want: grpc.StatusCode, want_details=None
    ) -> None:
        """The call ended with `want` (and, when given, exactly `want_details`)."""
        if code != want:
            self.fail(f"{what} status = {status_text(code, details)}, want {status_text(want)}")
        elif want_details is not None and details != want_details:
            # grpcio hands over the percent-decoded message as str; equal code points
            # is equal UTF-8 bytes, so this is the byte-for-byte comparison.
            self.fail(f"{what} status message = {show(details)}, want {show(want_details)}")


@dataclass
class Context:
    """What the cases use: the stubs, all over one channel."""

    channel: grpc.Channel
    greeter: helloworld_pb2_grpc.GreeterStub = field(init=False)
    test: test_pb2_grpc.TestServiceStub = field(init=False)
    unimplemented: test_pb2_grpc.UnimplementedServiceStub = field(init=False)

    def __post_init__(self):
        self.greeter = helloworld_pb2_grpc.GreeterStub(self.channel)
        self.test = test_pb2_grpc.TestServiceStub(self.channel)
        self.unimplemented = test_pb2_grpc.UnimplementedServiceStub(self.channel)


class Outbox:
    """Request iterator for a client stream whose next message waits on a response.

    grpcio's sync API pulls requests from an iterator in its own thread; this one
    blocks until the case sends the next message or closes. Use it as a context
    manager so the pulling thread is always released, however the case ends.
    """

    _CLOSE = object()

    def __init__(self):
        self._queue = queue.SimpleQueue()

    def send(self, request) -> None:
        self._queue.put(request)

    def close(self) -> None:
        """Half-close: the iterator ends after the messages already sent."""
        self._queue.put(self._CLOSE)

    def __iter__(self):
        return self

    def __next__(self):
        request = self._queue.get()
        if request is self._CLOSE:
            self._queue.put(self._CLOSE)  # stays closed for any later pull
            raise StopIteration
        return request

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _payload(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _streaming_request(response_size: int, payload_size: int = 0, **fields) -> messages_pb2.StreamingOutputCallRequest:
    return messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
        payload=_payload(payload_size),
        **fields,
    )


def _large_unary_request(**fields) -> messages_pb2.SimpleRequest:
    return messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_size=LARGE_RESPONSE_SIZE,
        payload=_payload(LARGE_REQUEST_SIZE),
        **fields,
    )


def _read_no_more(checks: Checks, what: str, call, already: int) -> None:
    """After half-close the stream ends OK with no further responses."""
    try:
        extra = sum(1 for _ in call)
    except grpc.RpcError as e:
        checks.rpc_error(f"{what} after half-close", e)
        return
    checks.equal(f"{what} responses after half-close (after {already})", extra, 0)
    checks.status(f"{what}", call.code(), call.details(), grpc.StatusCode.OK)


def _metadata_value(metadata, key: str):
    for item in metadata or ():
        if item.key == key:
            return item.value
    return None


# --- the cases, in the order of the contract's tables -----------------------------------

CASES: dict = {}
"""Case name -> case function, in the order `all` runs them."""


def case(function):
    """Register a case under its function's name."""
    CASES[function.__name__] = function
    return function


@case
def greeter_unary(ctx: Context, checks: Checks) -> None:
    """SayHello(name="interop") returns "Hello interop", index 0."""
    try:
        reply = ctx.greeter.SayHello(helloworld_pb2.HelloRequest(name=GREETER_NAME), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("SayHello", e)
        return
    checks.equal("SayHello message", reply.message, f"Hello {GREETER_NAME}")
    checks.equal("SayHello index", reply.index, 0)


@case
def greeter_server_streaming(ctx: Context, checks: Checks) -> None:
    """SayHelloStream(name="interop", count=5) returns "Hello interop (i of 5)", index i, for i = 1..5."""
    request = helloworld_pb2.HelloStreamRequest(name=GREETER_NAME, count=GREETER_STREAM_COUNT)
    try:
        replies = list(ctx.greeter.SayHelloStream(request, timeout=RPC_TIMEOUT_S))
    except grpc.RpcError as e:
        checks.rpc_error("SayHelloStream", e)
        return
    checks.equal("SayHelloStream reply count", len(replies), GREETER_STREAM_COUNT)
    for i, reply in enumerate(replies[:GREETER_STREAM_COUNT], start=1):
        checks.equal(f"SayHelloStream reply {i} message", reply.message, f"Hello {GREETER_NAME} ({i} of 5)")
        checks.equal(f"SayHelloStream reply {i} index", reply.index, i)


@case
def greeter_client_streaming(ctx: Context, checks: Checks) -> None:
    """SayHelloToAll(alice, bob, carol) returns "Hello alice, bob, carol", index 3."""
    requests = [helloworld_pb2.HelloRequest(name=name) for name in GREETER_NAMES]
    try:
        reply = ctx.greeter.SayHelloToAll(iter(requests), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("SayHelloToAll", e)
        return
    checks.equal("SayHelloToAll message", reply.message, "Hello " + ", ".join(GREETER_NAMES))
    checks.equal("SayHelloToAll index", reply.index, len(GREETER_NAMES))


@case
def greeter_bidi_streaming(ctx: Context, checks: Checks) -> None:
    """SayHelloChat: name k+1 goes out only after reply k ("Hello <name k>", index k) came back."""
    with Outbox() as outbox:
        call = ctx.greeter.SayHelloChat(outbox, timeout=RPC_TIMEOUT_S)
        try:
            for k, name in enumerate(GREETER_CHAT_NAMES, start=1):
                outbox.send(helloworld_pb2.HelloRequest(name=name))
                reply = next(call, None)
                if reply is None:
                    checks.fail(f"SayHelloChat ended after {k - 1} replies, want {len(GREETER_CHAT_NAMES)}")
                    return
                checks.equal(f"SayHelloChat reply {k} message", reply.message, f"Hello {name}")
                checks.equal(f"SayHelloChat reply {k} index", reply.index, k)
        except grpc.RpcError as e:
            checks.rpc_error("SayHelloChat", e)
            return
        outbox.close()
        _read_no_more(checks, "SayHelloChat", call, len(GREETER_CHAT_NAMES))


@case
def empty_unary(ctx: Context, checks: Checks) -> None:
    """EmptyCall(Empty) returns an Empty."""
    try:
        reply = ctx.test.EmptyCall(empty_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("EmptyCall", e)
        return
    if not isinstance(reply, empty_pb2.Empty):
        checks.fail(f"EmptyCall returned a {type(reply).__name__}, want grpc.testing.Empty")


@case
def large_unary(ctx: Context, checks: Checks) -> None:
    """UnaryCall(response_size=314159, payload=271828 bytes) returns 314159 zero bytes."""
    try:
        reply = ctx.test.UnaryCall(_large_unary_request(), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("UnaryCall", e)
        return
    checks.payload("UnaryCall response", reply.payload, LARGE_RESPONSE_SIZE)


@case
def client_streaming(ctx: Context, checks: Checks) -> None:
    """StreamingInputCall with payloads 27182, 8, 1828, 45904: aggregated_payload_size 74922."""
    requests = [messages_pb2.StreamingInputCallRequest(payload=_payload(size)) for size in STREAM_REQUEST_SIZES]
    try:
        reply = ctx.test.StreamingInputCall(iter(requests), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("StreamingInputCall", e)
        return
    checks.equal("StreamingInputCall aggregated_payload_size", reply.aggregated_payload_size, STREAM_AGGREGATED_SIZE)


@case
def server_streaming(ctx: Context, checks: Checks) -> None:
    """StreamingOutputCall with sizes 31415, 9, 2653, 58979: four responses of those sizes, in order."""
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=size) for size in STREAM_RESPONSE_SIZES],
    )
    try:
        replies = list(ctx.test.StreamingOutputCall(request, timeout=RPC_TIMEOUT_S))
    except grpc.RpcError as e:
        checks.rpc_error("StreamingOutputCall", e)
        return
    checks.equal("StreamingOutputCall response count", len(replies), len(STREAM_RESPONSE_SIZES))
    for i, (reply, size) in enumerate(zip(replies, STREAM_RESPONSE_SIZES, strict=False), start=1):
        checks.payload(f"StreamingOutputCall response {i}", reply.payload, size)


@case
def ping_pong(ctx: Context, checks: Checks) -> None:
    """FullDuplexCall: four request/response rounds, each response read before the next request."""
    with Outbox() as outbox:
        call = ctx.test.FullDuplexCall(outbox, timeout=RPC_TIMEOUT_S)
        try:
            for i, (response_size, payload_size) in enumerate(
                zip(STREAM_RESPONSE_SIZES, STREAM_REQUEST_SIZES, strict=True), start=1
            ):
                outbox.send(_streaming_request(response_size, payload_size))
                reply = next(call, None)
                if reply is None:
                    checks.fail(f"FullDuplexCall ended after {i - 1} responses, want {len(STREAM_RESPONSE_SIZES)}")
                    return
                checks.payload(f"FullDuplexCall response {i}", reply.payload, response_size)
        except grpc.RpcError as e:
            checks.rpc_error("FullDuplexCall", e)
            return
        outbox.close()
        _read_no_more(checks, "FullDuplexCall", call, len(STREAM_RESPONSE_SIZES))


@case
def empty_stream(ctx: Context, checks: Checks) -> None:
    """FullDuplexCall half-closed at once: zero responses, status OK."""
    call = ctx.test.FullDuplexCall(iter(()), timeout=RPC_TIMEOUT_S)
    try:
        count = sum(1 for _ in call)
    except grpc.RpcError as e:
        checks.rpc_error("FullDuplexCall", e)
        return
    checks.equal("FullDuplexCall response count", count, 0)
    checks.status("FullDuplexCall", call.code(), call.details(), grpc.StatusCode.OK)


def _check_echoed_metadata(checks: Checks, what: str, call) -> None:
    checks.equal(
        f"{what} initial metadata {ECHO_INITIAL_KEY}",
        _metadata_value(call.initial_metadata(), ECHO_INITIAL_KEY),
        ECHO_INITIAL_VALUE,
    )
    checks.equal(
        f"{what} trailing metadata {ECHO_TRAILING_KEY}",
        _metadata_value(call.trailing_metadata(), ECHO_TRAILING_KEY),
        ECHO_TRAILING_VALUE,
    )


@case
def custom_metadata(ctx: Context, checks: Checks) -> None:
    """UnaryCall and FullDuplexCall echo x-grpc-test-echo-initial in headers and -trailing-bin in trailers."""
    metadata = ((ECHO_INITIAL_KEY, ECHO_INITIAL_VALUE), (ECHO_TRAILING_KEY, ECHO_TRAILING_VALUE))
    try:
        reply, call = ctx.test.UnaryCall.with_call(_large_unary_request(), metadata=metadata, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("UnaryCall", e)
    else:
        checks.payload("UnaryCall response", reply.payload, LARGE_RESPONSE_SIZE)
        _check_echoed_metadata(checks, "UnaryCall", call)

    request = _streaming_request(LARGE_RESPONSE_SIZE, LARGE_REQUEST_SIZE)
    call = ctx.test.FullDuplexCall(iter([request]), metadata=metadata, timeout=RPC_TIMEOUT_S)
    try:
        replies = list(call)
    except grpc.RpcError as e:
        checks.rpc_error("FullDuplexCall", e)
        return
    if checks.equal("FullDuplexCall response count", len(replies), 1):
        checks.payload("FullDuplexCall response", replies[0].payload, LARGE_RESPONSE_SIZE)
    _check_echoed_metadata(checks, "FullDuplexCall", call)


def _expect_unary_status(checks: Checks, what: str, rpc, request, want, want_details=None) -> None:
    """Call a unary RPC that must end with status `want`."""
    try:
        rpc(request, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.status(what, e.code(), e.details(), want, want_details)
    else:
        checks.status(what, grpc.StatusCode.OK, None, want, want_details)


def _expect_stream_status(checks: Checks, what: str, call, want, want_details=None) -> None:
    """Drain a response stream that must end with status `want`."""
    try:
        for _ in call:
            pass
    except grpc.RpcError as e:
        checks.status(what, e.code(), e.details(), want, want_details)
    else:
        checks.status(what, call.code(), call.details(), want, want_details)


@case
def status_code_and_message(ctx: Context, checks: Checks) -> None:
    """UnaryCall and FullDuplexCall with response_status {2, "test status message"} end with exactly that."""
    status = messages_pb2.EchoStatus(code=grpc.StatusCode.UNKNOWN.value[0], message=STATUS_MESSAGE)
    _expect_unary_status(
        checks,
        "UnaryCall",
        ctx.test.UnaryCall,
        messages_pb2.SimpleRequest(response_status=status),
        grpc.StatusCode.UNKNOWN,
        STATUS_MESSAGE,
    )
    request = messages_pb2.StreamingOutputCallRequest(response_status=status)
    call = ctx.test.FullDuplexCall(iter([request]), timeout=RPC_TIMEOUT_S)
    _expect_stream_status(checks, "FullDuplexCall", call, grpc.StatusCode.UNKNOWN, STATUS_MESSAGE)


@case
def special_status_message(ctx: Context, checks: Checks) -> None:
    """UnaryCall with a whitespace and Unicode status message gets it back byte for byte."""
    status = messages_pb2.EchoStatus(code=grpc.StatusCode.UNKNOWN.value[0], message=SPECIAL_STATUS_MESSAGE)
    _expect_unary_status(
        checks,
        "UnaryCall",
        ctx.test.UnaryCall,
        messages_pb2.SimpleRequest(response_status=status),
        grpc.StatusCode.UNKNOWN,
        SPECIAL_STATUS_MESSAGE,
    )


@case
def unimplemented_method(ctx: Context, checks: Checks) -> None:
    """TestService.UnimplementedCall ends with UNIMPLEMENTED."""
    _expect_unary_status(
        checks,
        "TestService.UnimplementedCall",
        ctx.test.UnimplementedCall,
        empty_pb2.Empty(),
        grpc.StatusCode.UNIMPLEMENTED,
    )


@case
def unimplemented_service(ctx: Context, checks: Checks) -> None:
    """UnimplementedService.UnimplementedCall ends with UNIMPLEMENTED."""
    _expect_unary_status(
        checks,
        "UnimplementedService.UnimplementedCall",
        ctx.unimplemented.UnimplementedCall,
        empty_pb2.Empty(),
        grpc.StatusCode.UNIMPLEMENTED,
    )


@case
def cancel_after_begin(ctx: Context, checks: Checks) -> None:
    """StreamingInputCall cancelled before any message: CANCELLED."""
    with Outbox() as outbox:
        future = ctx.test.StreamingInputCall.future(outbox, timeout=RPC_TIMEOUT_S)
        future.cancel()
        checks.status("StreamingInputCall", future.code(), future.details(), grpc.StatusCode.CANCELLED)


@case
def cancel_after_first_response(ctx: Context, checks: Checks) -> None:
    """FullDuplexCall cancelled after its first response: CANCELLED."""
    with Outbox() as outbox:
        call = ctx.test.FullDuplexCall(outbox, timeout=RPC_TIMEOUT_S)
        outbox.send(_streaming_request(STREAM_RESPONSE_SIZES[0], STREAM_REQUEST_SIZES[0]))
        try:
            reply = next(call, None)
        except grpc.RpcError as e:
            checks.rpc_error("FullDuplexCall", e)
            return
        if reply is None:
            checks.fail("FullDuplexCall ended with no response, want 1 before cancelling")
        else:
            checks.payload("FullDuplexCall response 1", reply.payload, STREAM_RESPONSE_SIZES[0])
        call.cancel()
        checks.status("FullDuplexCall", call.code(), call.details(), grpc.StatusCode.CANCELLED)


@case
def timeout_on_sleeping_server(ctx: Context, checks: Checks) -> None:
    """FullDuplexCall with a 1 ms deadline and an open stream: DEADLINE_EXCEEDED."""
    with Outbox() as outbox:
        deadline = time.monotonic() + SLEEPING_SERVER_TIMEOUT_S
        call = ctx.test.FullDuplexCall(outbox, timeout=SLEEPING_SERVER_TIMEOUT_S)
        # Whether this send makes it before the deadline does not matter: only the status does.
        outbox.send(messages_pb2.StreamingOutputCallRequest(payload=_payload(STREAM_REQUEST_SIZES[0])))
        try:
            for _ in call:
                pass
            code, details = call.code(), call.details()
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
        # A server that sees the deadline pass first resets the stream (RST_STREAM
        # CANCEL), which can reach the client before its own timer fires. The gRPC
        # HTTP/2 protocol notes ask clients to re-check their deadline when a call
        # ends CANCELLED and report DEADLINE_EXCEEDED if it has passed; grpcio
        # does not, so the check is made here.
        if code == grpc.StatusCode.CANCELLED and time.monotonic() >= deadline:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        checks.status("FullDuplexCall", code, details, grpc.StatusCode.DEADLINE_EXCEEDED, None)


@case
def client_compressed_unary(ctx: Context, checks: Checks) -> None:
    """UnaryCall with expect_compressed: uncompressed probe rejected, gzip accepted, plain accepted."""
    expect = messages_pb2.BoolValue(value=True)
    _expect_unary_status(
        checks,
        "UnaryCall(expect_compressed=true, sent uncompressed)",
        ctx.test.UnaryCall,
        _large_unary_request(expect_compressed=expect),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    for what, request, compression in (
        ("UnaryCall(expect_compressed=true, sent gzip)", _large_unary_request(expect_compressed=expect), True),
        (
            "UnaryCall(expect_compressed=false, sent uncompressed)",
            _large_unary_request(expect_compressed=messages_pb2.BoolValue(value=False)),
            False,
        ),
    ):
        try:
            reply = ctx.test.UnaryCall(
                request,
                timeout=RPC_TIMEOUT_S,
                compression=grpc.Compression.Gzip if compression else grpc.Compression.NoCompression,
            )
        except grpc.RpcError as e:
            checks.rpc_error(what, e)
            continue
        checks.payload(what, reply.payload, LARGE_RESPONSE_SIZE)


@case
def server_compressed_unary(ctx: Context, checks: Checks) -> None:
    """UnaryCall with response_compressed true, then false: payload 314159 both times.

    grpcio does not expose whether a received message was compressed, so the
    flag itself is not checked.
    """
    for compressed in (True, False):
        what = f"UnaryCall(response_compressed={str(compressed).lower()})"
        request = _large_unary_request(response_compressed=messages_pb2.BoolValue(value=compressed))
        try:
            reply = ctx.test.UnaryCall(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            checks.rpc_error(what, e)
            continue
        checks.payload(what, reply.payload, LARGE_RESPONSE_SIZE)


@case
def client_compressed_streaming(ctx: Context, checks: Checks) -> None:
    """Unsupported with grpcio (see UNSUPPORTED); never called by run_case."""
    raise NotImplementedError(UNSUPPORTED["client_compressed_streaming"])


@case
def server_compressed_streaming(ctx: Context, checks: Checks) -> None:
    """StreamingOutputCall (31415, compressed), (92653, uncompressed): two responses of those sizes.

    grpcio does not expose whether a received message was compressed, so the
    flags themselves are not checked.
    """
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[
            messages_pb2.ResponseParameters(size=size, compressed=messages_pb2.BoolValue(value=compressed))
            for size, compressed in zip(COMPRESSED_STREAM_RESPONSE_SIZES, (True, False), strict=True)
        ],
    )
    try:
        replies = list(ctx.test.StreamingOutputCall(request, timeout=RPC_TIMEOUT_S))
    except grpc.RpcError as e:
        checks.rpc_error("StreamingOutputCall", e)
        return
    checks.equal("StreamingOutputCall response count", len(replies), len(COMPRESSED_STREAM_RESPONSE_SIZES))
    for i, (reply, size) in enumerate(zip(replies, COMPRESSED_STREAM_RESPONSE_SIZES, strict=False), start=1):
        checks.payload(f"StreamingOutputCall response {i}", reply.payload, size)


# --- running ----------------------------------------------------------------------------


def run_case(ctx: Context, name: str) -> dict:
    """Run one case and return its result event (the JSON object the client prints)."""
    start = time.perf_counter()
    if name in UNSUPPORTED:
        outcome, message = "unsupported", UNSUPPORTED[name]
    else:
        checks = Checks()
        try:
            CASES[name](ctx, checks)
        except Exception as e:  # a bug or surprise in a case is a failed result, never a crash
            if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
                checks.fail(f"unexpected RPC error: {status_text(e.code(), e.details())}")
            else:
                checks.fail(f"unexpected {type(e).__name__}: {e}")
        outcome = "failed" if checks.failures else "passed"
        message = "; ".join(checks.failures)
    return {
        "event": "result",
        "case": name,
        "outcome": outcome,
        "duration_ms": round((time.perf_counter() - start) * 1000.0, 2),
        "message": message,
    }
