"""The client cases of implementations/CONTRACT.md, one function per case.

Each case function takes a `Context` (the stubs) and a `Checks` (where every
check is recorded under its name in the contract's checks table) and returns
nothing: a failed check never stops the next one. `run_case` plays the case in
a worker thread, bounded by the backstop, and turns the recorded checks, an
unexpected exception or a call grpcio did not end into one result.

The wire cases differ only in the code they want (and silent_server in its
deadline): they are one function, `wire_case`, registered once per row of
`WIRE_CASES`.
"""

import functools
import json
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import grpc

from interop._gen import empty_pb2, helloworld_pb2, helloworld_pb2_grpc, messages_pb2, test_pb2_grpc
from interop.channels import ClientCert, TlsSettings, tls_channel

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

# The cases against the bad server: the request metadata that tells it how to
# answer (CONTRACT.md, "Cases against the bad server").
CASE_METADATA_KEY = "x-interop-case"
# max_streams: after one call, this many at the same time on the same channel.
MAX_STREAMS_CONCURRENT = 10
# tls_wrong_name verifies the server as a name its certificate does not carry
# (.invalid is reserved, RFC 2606, so it is no one's name).
WRONG_NAME = "wrong.name.invalid"

# Every RPC has a deadline so that a client never waits forever on a server;
# 10 s is far above what any case needs on loopback, even on a loaded CI machine.
RPC_TIMEOUT_S = 10.0
# timeout_on_sleeping_server wants the deadline to expire while the call is open.
SLEEPING_SERVER_TIMEOUT_S = 0.001
# silent_server: the contract's deadline for a server that never answers; short,
# since the whole case is waiting for it.
SILENT_SERVER_TIMEOUT_S = 1.0
# The deadline of the other wire cases' calls (the contract's): every answer of
# the bad server comes at once on loopback, and a library that waits for more
# than the server sends ends at it.
WIRE_TIMEOUT_S = 3.0
# goaway: the contract's pause between the two calls, long enough for the
# client to have read the GOAWAY that followed the first call.
GOAWAY_PAUSE_S = 1.0
# The backstop: a case whose calls grpcio has not ended this long after their
# deadlines fails, and the client goes on with the next case. Read at each
# run_case, like RPC_TIMEOUT_S, so a test can shorten both.
BACKSTOP_S = 3.0

UNSUPPORTED = {
    "client_compressed_streaming": (
        "grpcio cannot send one message of a client stream compressed and the next uncompressed: "
        "compression is chosen per call (compression=), and grpcio sends every request message with "
        "write flags 0 (no per-message no-compress control, unlike the server's disable_next_message_compression)"
    ),
}
"""Cases this client cannot express with grpcio, and why. The manifest
(implementations/python.toml, [client.unsupported]) lists the same."""

RESPONSE_COMPRESSED_REASON = (
    f"grpcio {grpc.__version__} does not expose whether a received message was compressed: C-core "
    "decompresses each message before Python sees it, and the stub and its Call object give only the "
    "message and the metadata, never a message's compressed flag"
)
"""Why `response_compressed` is in not_checked."""

SENT_COMPRESSED_REASON = (
    f"grpcio {grpc.__version__} does not expose whether a sent message was compressed: "
    "compression=grpc.Compression.Gzip only asks C-core for gzip on the call (grpc-internal-encoding-request "
    "metadata), and no grpcio API reports the compressed flag a request message went out with"
)
"""Why `sent_compressed` is in not_checked."""

PASSED = "passed"
FAILED = "failed"


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


def _payload_type_name(value: int) -> str | int:
    """The PayloadType's name, or the number a peer sent that has none (proto3 enums are open)."""
    try:
        return messages_pb2.PayloadType.Name(value)
    except ValueError:
        return value


class Checks:
    """The checks of one case, each under its name in the contract's checks table.

    `results` maps each check made to "passed" or "failed" (failed when any of
    its instances failed, e.g. the size of one response out of four);
    `failures` holds a message per failed instance, saying what was called, what
    came back and what was wanted; `not_checked` maps each check grpcio cannot
    make to the reason; `metrics`, when a case measured numbers (the soak cases),
    becomes the result's `metrics`.
    """

    def __init__(self):
        self.results: dict[str, str] = {}
        self.failures: list[str] = []
        self.not_checked: dict[str, str] = {}
        self.metrics: dict[str, int | float] | None = None

    def copy(self) -> "Checks":
        copied = Checks()
        copied.results = dict(self.results)
        copied.failures = list(self.failures)
        copied.not_checked = dict(self.not_checked)
        copied.metrics = None if self.metrics is None else dict(self.metrics)
        return copied

    def check(self, name: str, ok: bool, message: str = "") -> bool:
        """Record one instance of check `name`; `message` is the failure when not `ok`."""
        if ok:
            self.results.setdefault(name, PASSED)
        else:
            self.results[name] = FAILED
            self.failures.append(message)
        return ok

    def passed(self, name: str) -> None:
        """Check `name` held (e.g. `status`: the call returned without an error)."""
        self.check(name, True)

    def fail(self, name: str, message: str) -> None:
        self.check(name, False, message)

    def not_made(self, name: str, reason: str) -> None:
        """Check `name` cannot be made with grpcio, for `reason`."""
        self.not_checked[name] = reason

    def equal(self, name: str, what: str, got, want) -> bool:
        """Check `name`: `<what> = <got>, want <want>` unless they are equal."""
        if got == want:
            return self.check(name, True)
        return self.check(name, False, f"{what} = {show(got)}, want {show(want)}")

    def payload(
        self,
        prefix: str,
        what: str,
        payload: messages_pb2.Payload,
        size: int,
        parts: tuple[str, ...] = ("size", "body", "type"),
    ) -> None:
        """Checks `<prefix>payload_size`, `_body` and `_type`: `size` zero bytes of
        type COMPRESSABLE; only those of `parts` when a case's row has fewer."""
        body = payload.body
        if "size" in parts:
            self.equal(prefix + "payload_size", f"{what} payload size", len(body), size)
        if "body" in parts:
            nonzero = len(body) - body.count(0)
            self.check(
                prefix + "payload_body",
                nonzero == 0,
                f"{what} payload body has {nonzero} non-zero bytes, want all zero",
            )
        if "type" in parts:
            self.equal(
                prefix + "payload_type", f"{what} payload type", _payload_type_name(payload.type), "COMPRESSABLE"
            )

    def rpc_error(self, name: str, what: str, error: grpc.RpcError) -> None:
        """Check `name` (a `status`): an RPC that should have succeeded failed."""
        self.fail(name, f"{what} status = {status_text(error.code(), error.details())}, want OK")

    def status(
        self, name: str, what: str, code: grpc.StatusCode | None, details: str | None, want: grpc.StatusCode
    ) -> bool:
        """Check `name` (`status` or `status_code`): the call ended with code `want`."""
        return self.check(name, code == want, f"{what} status = {status_text(code, details)}, want {status_text(want)}")

    def status_message(self, name: str, what: str, details: str | None, want: str) -> bool:
        """Check `name` (`status_message`): the call's status message is exactly `want`."""
        # grpcio hands over the percent-decoded message as str; equal code points
        # is equal UTF-8 bytes, so this is the byte-for-byte comparison.
        return self.check(name, details == want, f"{what} status message = {show(details)}, want {show(want)}")


@dataclass(frozen=True)
class SoakOptions:
    """The --soak_* flags (CONTRACT.md, Client), with their defaults."""

    iterations: int = 10
    max_failures: int = 0
    per_iteration_max_acceptable_latency_ms: int = 1000
    overall_timeout_seconds: int = 10
    min_time_ms_between_rpcs: int = 0
    num_threads: int = 1


@dataclass(frozen=True)
class TlsCases:
    """What the tls cases use: the server's address, the TLS of mtls_accepted
    (`settings`: the CA of --ca_file, the name of --server_host_override, the
    certificate of --client_cert_file/--client_key_file, whatever --use_tls,
    --use_test_ca and --use_client_cert say), from which each refusal differs in
    one thing, and the second CA's files of $INTEROP_TLS_DIR."""

    host: str
    port: int
    settings: TlsSettings
    other_ca: bytes
    other_client: ClientCert


@dataclass
class Context:
    """What the cases use: the stubs, all over one channel; `new_channel` makes
    another channel to the same target with the same credentials (channel_soak,
    and the cases against the bad server); `soak` the soak flags; `tls` what
    the tls cases need."""

    channel: grpc.Channel
    new_channel: Callable[[], grpc.Channel] | None = None
    soak: SoakOptions = field(default_factory=SoakOptions)
    tls: TlsCases | None = None
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


def _read_no_more(checks: Checks, count_name: str, what: str, call, already: int) -> None:
    """After half-close the stream ends OK (`status`) with no further responses (`count_name`)."""
    try:
        extra = sum(1 for _ in call)
    except grpc.RpcError as e:
        checks.rpc_error("status", f"{what} after half-close", e)
        return
    checks.equal(count_name, f"{what} responses after half-close (after {already})", extra, 0)
    checks.status("status", what, call.code(), call.details(), grpc.StatusCode.OK)


def _metadata_value(metadata, key: str):
    for item in metadata or ():
        if item.key == key:
            return item.value
    return None


def chat_names() -> tuple[str, ...]:
    """The names of one greeter_bidi_streaming call: each with the same fresh
    token of 8 lowercase hex digits, which a server can only echo after the
    name arrived."""
    token = secrets.token_hex(4)
    return tuple(f"{name} {token}" for name in GREETER_CHAT_NAMES)


# --- the cases, in the order of the contract's tables -----------------------------------


@dataclass(frozen=True)
class Case:
    """One client case: its function, its row of the contract's checks table,
    its group, and what bounds how long it may take (see `case_bound_s`): how
    many RPCs it makes one after the other, each with its own deadline
    (`timeout_s`, else RPC_TIMEOUT_S), and how long it pauses in between."""

    name: str
    function: Callable[[Context, Checks], None]
    checks: tuple[str, ...]
    calls: int = 1
    group: str = "interop"
    timeout_s: float | None = None
    pause_s: float = 0.0

    @property
    def soak(self) -> bool:
        return self.group == "soak"

    @property
    def timeout(self) -> float:
        """The deadline of each of its RPCs, in seconds (RPC_TIMEOUT_S read now, so tests can shorten it)."""
        return RPC_TIMEOUT_S if self.timeout_s is None else self.timeout_s

    @property
    def status_check(self) -> str:
        """The row's first status-like check (`status` or `status_code`, with its
        prefix), else its first check (`completed` for the soak cases): where an
        unexpected error, or a call grpcio did not end, is recorded."""
        return next(
            (name for name in self.checks if name.rpartition(".")[2] in ("status", "status_code")), self.checks[0]
        )


CASES: dict[str, Case] = {}
"""Case name -> client case, in the order of the catalogue (src/cases.rs)."""

DEFAULT_GROUPS = ("greeter", "interop", "soak")
"""The groups of `--test_case all`: every server serves them."""


def default_cases() -> list[str]:
    """The cases of `--test_case all`, in order."""
    return [name for name, spec in CASES.items() if spec.group in DEFAULT_GROUPS]


def case(*checks: str, calls: int = 1, group: str = "interop", timeout_s: float | None = None, pause_s: float = 0.0):
    """Register a case under its function's name, with its row of the checks table."""

    def register(function):
        CASES[function.__name__] = Case(function.__name__, function, checks, calls, group, timeout_s, pause_s)
        return function

    return register


@case("status", "message", "index", group="greeter")
def greeter_unary(ctx: Context, checks: Checks) -> None:
    """SayHello(name="interop") returns "Hello interop", index 0."""
    try:
        reply = ctx.greeter.SayHello(helloworld_pb2.HelloRequest(name=GREETER_NAME), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("status", "SayHello", e)
        return
    checks.passed("status")
    checks.equal("message", "SayHello message", reply.message, f"Hello {GREETER_NAME}")
    checks.equal("index", "SayHello index", reply.index, 0)


@case("status", "reply_count", "message", "index", group="greeter")
def greeter_server_streaming(ctx: Context, checks: Checks) -> None:
    """SayHelloStream(name="interop", count=5) returns "Hello interop (i of 5)", index i, for i = 1..5."""
    request = helloworld_pb2.HelloStreamRequest(name=GREETER_NAME, count=GREETER_STREAM_COUNT)
    try:
        replies = list(ctx.greeter.SayHelloStream(request, timeout=RPC_TIMEOUT_S))
    except grpc.RpcError as e:
        checks.rpc_error("status", "SayHelloStream", e)
        return
    checks.passed("status")
    checks.equal("reply_count", "SayHelloStream reply count", len(replies), GREETER_STREAM_COUNT)
    for i, reply in enumerate(replies[:GREETER_STREAM_COUNT], start=1):
        checks.equal("message", f"SayHelloStream reply {i} message", reply.message, f"Hello {GREETER_NAME} ({i} of 5)")
        checks.equal("index", f"SayHelloStream reply {i} index", reply.index, i)


@case("status", "message", "index", group="greeter")
def greeter_client_streaming(ctx: Context, checks: Checks) -> None:
    """SayHelloToAll(alice, bob, carol) returns "Hello alice, bob, carol", index 3."""
    requests = [helloworld_pb2.HelloRequest(name=name) for name in GREETER_NAMES]
    try:
        reply = ctx.greeter.SayHelloToAll(iter(requests), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("status", "SayHelloToAll", e)
        return
    checks.passed("status")
    checks.equal("message", "SayHelloToAll message", reply.message, "Hello " + ", ".join(GREETER_NAMES))
    checks.equal("index", "SayHelloToAll index", reply.index, len(GREETER_NAMES))


@case("status", "reply_count", "message", "index", group="greeter")
def greeter_bidi_streaming(ctx: Context, checks: Checks) -> None:
    """SayHelloChat: name k+1 ("<name> <token>") goes out only after reply k ("Hello <name k>", index k) came back."""
    names = chat_names()
    with Outbox() as outbox:
        call = ctx.greeter.SayHelloChat(outbox, timeout=RPC_TIMEOUT_S)
        try:
            for k, name in enumerate(names, start=1):
                outbox.send(helloworld_pb2.HelloRequest(name=name))
                reply = next(call, None)
                if reply is None:
                    checks.fail("reply_count", f"SayHelloChat ended after {k - 1} replies, want {len(names)}")
                    checks.status("status", "SayHelloChat", call.code(), call.details(), grpc.StatusCode.OK)
                    return
                checks.equal("message", f"SayHelloChat reply {k} message", reply.message, f"Hello {name}")
                checks.equal("index", f"SayHelloChat reply {k} index", reply.index, k)
        except grpc.RpcError as e:
            checks.rpc_error("status", "SayHelloChat", e)
            return
        outbox.close()
        _read_no_more(checks, "reply_count", "SayHelloChat", call, len(names))


@case("status")
def empty_unary(ctx: Context, checks: Checks) -> None:
    """EmptyCall(Empty) returns an Empty."""
    try:
        reply = ctx.test.EmptyCall(empty_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("status", "EmptyCall", e)
        return
    checks.check(
        "status",
        isinstance(reply, empty_pb2.Empty),
        f"EmptyCall returned a {type(reply).__name__}, want grpc.testing.Empty",
    )


@case("status", "payload_size", "payload_body", "payload_type")
def large_unary(ctx: Context, checks: Checks) -> None:
    """UnaryCall(response_size=314159, payload=271828 bytes) returns 314159 zero bytes."""
    try:
        reply = ctx.test.UnaryCall(_large_unary_request(), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("status", "UnaryCall", e)
        return
    checks.passed("status")
    checks.payload("", "UnaryCall response", reply.payload, LARGE_RESPONSE_SIZE)


@case("status", "aggregated_size")
def client_streaming(ctx: Context, checks: Checks) -> None:
    """StreamingInputCall with payloads 27182, 8, 1828, 45904: aggregated_payload_size 74922."""
    requests = [messages_pb2.StreamingInputCallRequest(payload=_payload(size)) for size in STREAM_REQUEST_SIZES]
    try:
        reply = ctx.test.StreamingInputCall(iter(requests), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("status", "StreamingInputCall", e)
        return
    checks.passed("status")
    checks.equal(
        "aggregated_size",
        "StreamingInputCall aggregated_payload_size",
        reply.aggregated_payload_size,
        STREAM_AGGREGATED_SIZE,
    )


@case("status", "response_count", "payload_size", "payload_body", "payload_type")
def server_streaming(ctx: Context, checks: Checks) -> None:
    """StreamingOutputCall with sizes 31415, 9, 2653, 58979: four responses of those sizes, in order."""
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=size) for size in STREAM_RESPONSE_SIZES],
    )
    try:
        replies = list(ctx.test.StreamingOutputCall(request, timeout=RPC_TIMEOUT_S))
    except grpc.RpcError as e:
        checks.rpc_error("status", "StreamingOutputCall", e)
        return
    checks.passed("status")
    checks.equal("response_count", "StreamingOutputCall response count", len(replies), len(STREAM_RESPONSE_SIZES))
    for i, (reply, size) in enumerate(zip(replies, STREAM_RESPONSE_SIZES, strict=False), start=1):
        checks.payload("", f"StreamingOutputCall response {i}", reply.payload, size)


@case("status", "response_count", "payload_size", "payload_body", "payload_type")
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
                    checks.fail(
                        "response_count",
                        f"FullDuplexCall ended after {i - 1} responses, want {len(STREAM_RESPONSE_SIZES)}",
                    )
                    checks.status("status", "FullDuplexCall", call.code(), call.details(), grpc.StatusCode.OK)
                    return
                checks.payload("", f"FullDuplexCall response {i}", reply.payload, response_size)
        except grpc.RpcError as e:
            checks.rpc_error("status", "FullDuplexCall", e)
            return
        outbox.close()
        _read_no_more(checks, "response_count", "FullDuplexCall", call, len(STREAM_RESPONSE_SIZES))


@case("status", "response_count")
def empty_stream(ctx: Context, checks: Checks) -> None:
    """FullDuplexCall half-closed at once: zero responses, status OK."""
    call = ctx.test.FullDuplexCall(iter(()), timeout=RPC_TIMEOUT_S)
    try:
        count = sum(1 for _ in call)
    except grpc.RpcError as e:
        checks.rpc_error("status", "FullDuplexCall", e)
        return
    checks.equal("response_count", "FullDuplexCall response count", count, 0)
    checks.status("status", "FullDuplexCall", call.code(), call.details(), grpc.StatusCode.OK)


def _check_echoed_metadata(checks: Checks, prefix: str, what: str, call) -> None:
    checks.equal(
        prefix + "echo_initial",
        f"{what} initial metadata {ECHO_INITIAL_KEY}",
        _metadata_value(call.initial_metadata(), ECHO_INITIAL_KEY),
        ECHO_INITIAL_VALUE,
    )
    checks.equal(
        prefix + "echo_trailing",
        f"{what} trailing metadata {ECHO_TRAILING_KEY}",
        _metadata_value(call.trailing_metadata(), ECHO_TRAILING_KEY),
        ECHO_TRAILING_VALUE,
    )


@case(
    "unary.status",
    "unary.payload_size",
    "unary.payload_body",
    "unary.payload_type",
    "unary.echo_initial",
    "unary.echo_trailing",
    "duplex.status",
    "duplex.response_count",
    "duplex.payload_size",
    "duplex.payload_body",
    "duplex.payload_type",
    "duplex.echo_initial",
    "duplex.echo_trailing",
    calls=2,
)
def custom_metadata(ctx: Context, checks: Checks) -> None:
    """UnaryCall and FullDuplexCall echo x-grpc-test-echo-initial in headers and -trailing-bin in trailers."""
    metadata = ((ECHO_INITIAL_KEY, ECHO_INITIAL_VALUE), (ECHO_TRAILING_KEY, ECHO_TRAILING_VALUE))
    try:
        reply, call = ctx.test.UnaryCall.with_call(_large_unary_request(), metadata=metadata, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        checks.rpc_error("unary.status", "UnaryCall", e)
    else:
        checks.passed("unary.status")
        checks.payload("unary.", "UnaryCall response", reply.payload, LARGE_RESPONSE_SIZE)
        _check_echoed_metadata(checks, "unary.", "UnaryCall", call)

    request = _streaming_request(LARGE_RESPONSE_SIZE, LARGE_REQUEST_SIZE)
    call = ctx.test.FullDuplexCall(iter([request]), metadata=metadata, timeout=RPC_TIMEOUT_S)
    try:
        replies = list(call)
    except grpc.RpcError as e:
        checks.rpc_error("duplex.status", "FullDuplexCall", e)
        return
    checks.passed("duplex.status")
    if checks.equal("duplex.response_count", "FullDuplexCall response count", len(replies), 1):
        checks.payload("duplex.", "FullDuplexCall response", replies[0].payload, LARGE_RESPONSE_SIZE)
    _check_echoed_metadata(checks, "duplex.", "FullDuplexCall", call)


def _expect_status(checks: Checks, prefix: str, what: str, code, details, want, want_details=None) -> None:
    """Checks `<prefix>status_code` and, when `want_details` is given and the code
    is right, `<prefix>status_message`."""
    if checks.status(prefix + "status_code", what, code, details, want) and want_details is not None:
        checks.status_message(prefix + "status_message", what, details, want_details)


def _expect_unary_status(checks: Checks, prefix: str, what: str, rpc, request, want, want_details=None) -> None:
    """Call a unary RPC that must end with status `want`."""
    try:
        rpc(request, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        _expect_status(checks, prefix, what, e.code(), e.details(), want, want_details)
    else:
        _expect_status(checks, prefix, what, grpc.StatusCode.OK, None, want, want_details)


def _expect_stream_status(checks: Checks, prefix: str, what: str, call, want, want_details=None) -> None:
    """Drain a response stream that must end with status `want`."""
    try:
        for _ in call:
            pass
    except grpc.RpcError as e:
        _expect_status(checks, prefix, what, e.code(), e.details(), want, want_details)
    else:
        _expect_status(checks, prefix, what, call.code(), call.details(), want, want_details)


@case("unary.status_code", "unary.status_message", "duplex.status_code", "duplex.status_message", calls=2)
def status_code_and_message(ctx: Context, checks: Checks) -> None:
    """UnaryCall and FullDuplexCall with response_status {2, "test status message"} end with exactly that."""
    status = messages_pb2.EchoStatus(code=grpc.StatusCode.UNKNOWN.value[0], message=STATUS_MESSAGE)
    _expect_unary_status(
        checks,
        "unary.",
        "UnaryCall",
        ctx.test.UnaryCall,
        messages_pb2.SimpleRequest(response_status=status),
        grpc.StatusCode.UNKNOWN,
        STATUS_MESSAGE,
    )
    request = messages_pb2.StreamingOutputCallRequest(response_status=status)
    call = ctx.test.FullDuplexCall(iter([request]), timeout=RPC_TIMEOUT_S)
    _expect_stream_status(checks, "duplex.", "FullDuplexCall", call, grpc.StatusCode.UNKNOWN, STATUS_MESSAGE)


@case("status_code", "status_message")
def special_status_message(ctx: Context, checks: Checks) -> None:
    """UnaryCall with a whitespace and Unicode status message gets it back byte for byte."""
    status = messages_pb2.EchoStatus(code=grpc.StatusCode.UNKNOWN.value[0], message=SPECIAL_STATUS_MESSAGE)
    _expect_unary_status(
        checks,
        "",
        "UnaryCall",
        ctx.test.UnaryCall,
        messages_pb2.SimpleRequest(response_status=status),
        grpc.StatusCode.UNKNOWN,
        SPECIAL_STATUS_MESSAGE,
    )


@case("status_code")
def unimplemented_method(ctx: Context, checks: Checks) -> None:
    """TestService.UnimplementedCall ends with UNIMPLEMENTED."""
    _expect_unary_status(
        checks,
        "",
        "TestService.UnimplementedCall",
        ctx.test.UnimplementedCall,
        empty_pb2.Empty(),
        grpc.StatusCode.UNIMPLEMENTED,
    )


@case("status_code")
def unimplemented_service(ctx: Context, checks: Checks) -> None:
    """UnimplementedService.UnimplementedCall ends with UNIMPLEMENTED."""
    _expect_unary_status(
        checks,
        "",
        "UnimplementedService.UnimplementedCall",
        ctx.unimplemented.UnimplementedCall,
        empty_pb2.Empty(),
        grpc.StatusCode.UNIMPLEMENTED,
    )


@case("status_code")
def cancel_after_begin(ctx: Context, checks: Checks) -> None:
    """StreamingInputCall cancelled before any message: CANCELLED."""
    with Outbox() as outbox:
        future = ctx.test.StreamingInputCall.future(outbox, timeout=RPC_TIMEOUT_S)
        future.cancel()
        checks.status("status_code", "StreamingInputCall", future.code(), future.details(), grpc.StatusCode.CANCELLED)


@case("status", "payload_size", "payload_body", "payload_type", "status_code")
def cancel_after_first_response(ctx: Context, checks: Checks) -> None:
    """FullDuplexCall cancelled after its first response: no error up to it (`status`), then CANCELLED."""
    with Outbox() as outbox:
        call = ctx.test.FullDuplexCall(outbox, timeout=RPC_TIMEOUT_S)
        outbox.send(_streaming_request(STREAM_RESPONSE_SIZES[0], STREAM_REQUEST_SIZES[0]))
        try:
            reply = next(call, None)
        except grpc.RpcError as e:
            checks.rpc_error("status", "FullDuplexCall", e)
            return
        checks.passed("status")
        if reply is None:
            checks.fail("payload_size", "FullDuplexCall ended with no response, want 1 before cancelling")
        else:
            checks.payload("", "FullDuplexCall response 1", reply.payload, STREAM_RESPONSE_SIZES[0])
        call.cancel()
        checks.status("status_code", "FullDuplexCall", call.code(), call.details(), grpc.StatusCode.CANCELLED)


@case("status_code")
def timeout_on_sleeping_server(ctx: Context, checks: Checks) -> None:
    """FullDuplexCall with a 1 ms deadline and an open stream: DEADLINE_EXCEEDED, as grpcio reports it."""
    with Outbox() as outbox:
        call = ctx.test.FullDuplexCall(outbox, timeout=SLEEPING_SERVER_TIMEOUT_S)
        # Whether this send makes it before the deadline does not matter: only the status does.
        outbox.send(messages_pb2.StreamingOutputCallRequest(payload=_payload(STREAM_REQUEST_SIZES[0])))
        try:
            for _ in call:
                pass
            code, details = call.code(), call.details()
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
        checks.status("status_code", "FullDuplexCall", code, details, grpc.StatusCode.DEADLINE_EXCEEDED)


@case(
    "probe.status_code",
    "compressed.status",
    "compressed.payload_size",
    "compressed.payload_body",
    "compressed.payload_type",
    "compressed.sent_compressed",
    "uncompressed.status",
    "uncompressed.payload_size",
    "uncompressed.payload_body",
    "uncompressed.payload_type",
    calls=3,
)
def client_compressed_unary(ctx: Context, checks: Checks) -> None:
    """UnaryCall with expect_compressed: uncompressed probe rejected, gzip accepted, plain accepted.

    grpcio does not expose whether a sent message was compressed, so
    `compressed.sent_compressed` is not checked (SENT_COMPRESSED_REASON).
    """
    checks.not_made("compressed.sent_compressed", SENT_COMPRESSED_REASON)
    expect = messages_pb2.BoolValue(value=True)
    _expect_unary_status(
        checks,
        "probe.",
        "UnaryCall(expect_compressed=true, sent uncompressed)",
        ctx.test.UnaryCall,
        _large_unary_request(expect_compressed=expect),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    for prefix, what, request, compression in (
        (
            "compressed.",
            "UnaryCall(expect_compressed=true, sent gzip)",
            _large_unary_request(expect_compressed=expect),
            grpc.Compression.Gzip,
        ),
        (
            "uncompressed.",
            "UnaryCall(expect_compressed=false, sent uncompressed)",
            _large_unary_request(expect_compressed=messages_pb2.BoolValue(value=False)),
            grpc.Compression.NoCompression,
        ),
    ):
        try:
            reply = ctx.test.UnaryCall(request, timeout=RPC_TIMEOUT_S, compression=compression)
        except grpc.RpcError as e:
            checks.rpc_error(prefix + "status", what, e)
            continue
        checks.passed(prefix + "status")
        checks.payload(prefix, what, reply.payload, LARGE_RESPONSE_SIZE)


@case(
    "compressed.status",
    "compressed.payload_size",
    "compressed.payload_body",
    "compressed.payload_type",
    "compressed.response_compressed",
    "uncompressed.status",
    "uncompressed.payload_size",
    "uncompressed.payload_body",
    "uncompressed.payload_type",
    "uncompressed.response_compressed",
    calls=2,
)
def server_compressed_unary(ctx: Context, checks: Checks) -> None:
    """UnaryCall with response_compressed true, then false: payload 314159 both times.

    grpcio does not expose whether a received message was compressed, so the
    flag itself is not checked (RESPONSE_COMPRESSED_REASON).
    """
    for prefix, compressed in (("compressed.", True), ("uncompressed.", False)):
        checks.not_made(prefix + "response_compressed", RESPONSE_COMPRESSED_REASON)
        what = f"UnaryCall(response_compressed={str(compressed).lower()})"
        request = _large_unary_request(response_compressed=messages_pb2.BoolValue(value=compressed))
        try:
            reply = ctx.test.UnaryCall(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            checks.rpc_error(prefix + "status", what, e)
            continue
        checks.passed(prefix + "status")
        checks.payload(prefix, what, reply.payload, LARGE_RESPONSE_SIZE)


@case("probe.status_code", "stream.status", "stream.aggregated_size", "stream.sent_compressed", calls=2)
def client_compressed_streaming(ctx: Context, checks: Checks) -> None:
    """Unsupported with grpcio (see UNSUPPORTED); never called by run_case."""
    raise NotImplementedError(UNSUPPORTED["client_compressed_streaming"])


@case("status", "response_count", "payload_size", "payload_body", "payload_type", "response_compressed")
def server_compressed_streaming(ctx: Context, checks: Checks) -> None:
    """StreamingOutputCall (31415, compressed), (92653, uncompressed): two responses of those sizes.

    grpcio does not expose whether a received message was compressed, so the
    flags themselves are not checked (RESPONSE_COMPRESSED_REASON).
    """
    checks.not_made("response_compressed", RESPONSE_COMPRESSED_REASON)
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
        checks.rpc_error("status", "StreamingOutputCall", e)
        return
    checks.passed("status")
    checks.equal(
        "response_count", "StreamingOutputCall response count", len(replies), len(COMPRESSED_STREAM_RESPONSE_SIZES)
    )
    for i, (reply, size) in enumerate(zip(replies, COMPRESSED_STREAM_RESPONSE_SIZES, strict=False), start=1):
        checks.payload("", f"StreamingOutputCall response {i}", reply.payload, size)


# --- the soak cases ---------------------------------------------------------------------

SOAK_REASONS_SHOWN = 3
"""How many failed iterations a `failures` message lists, the first by number."""


def nearest_rank(sorted_values: list[float], p: int) -> float:
    """The nearest-rank p-th percentile (an integer, 0 < p <= 100) of values sorted ascending:
    the value at rank ceil(p/100 * n), ranks counted from 1."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} is not in (0, 100]")
    # ceil(p * n / 100) in integers: p / 100 * n in floats can land just above an integer.
    rank = -(-p * len(sorted_values) // 100)
    return sorted_values[rank - 1]


def soak_metrics(iterations: int, failures: int, latencies_ms: list[float]) -> dict[str, int | float]:
    """The result's `metrics`: counts, then the latency percentiles over the
    iterations that succeeded in milliseconds with three decimals (absent when none did)."""
    metrics: dict[str, int | float] = {"iterations": iterations, "failures": failures}
    if latencies_ms:
        ordered = sorted(latencies_ms)
        for p in (50, 90, 99):
            metrics[f"latency_ms_p{p}"] = round(nearest_rank(ordered, p), 3)
        metrics["latency_ms_max"] = round(ordered[-1], 3)
    return metrics


@dataclass(frozen=True)
class SoakIteration:
    """One iteration that ran: its number (from 1), how long it took, and why
    it failed (empty when it succeeded)."""

    number: int
    latency_ms: float
    failure: str = ""


def _soak_iteration(ctx: Context, number: int, own_channel: bool) -> SoakIteration:
    """One large_unary with the per-iteration maximum as its deadline; with
    `own_channel` over a channel made for it (timed too) and closed after."""
    max_ms = ctx.soak.per_iteration_max_acceptable_latency_ms
    reasons: list[str] = []
    start = time.perf_counter()
    channel = None
    try:
        if own_channel:
            channel = ctx.new_channel()
            stub = test_pb2_grpc.TestServiceStub(channel)
        else:
            stub = ctx.test
        try:
            reply = stub.UnaryCall(_large_unary_request(), timeout=max_ms / 1000.0)
        except grpc.RpcError as e:
            latency_ms = (time.perf_counter() - start) * 1000.0
            reasons.append(f"UnaryCall status = {status_text(e.code(), e.details())}, want OK")
        else:
            latency_ms = (time.perf_counter() - start) * 1000.0
            payload = Checks()
            payload.payload("", "UnaryCall response", reply.payload, LARGE_RESPONSE_SIZE)
            reasons.extend(payload.failures)
            # Slowness is a reason of its own only for a call that returned: a
            # failed one already says why (DEADLINE_EXCEEDED when it was slow).
            if latency_ms > max_ms:
                reasons.append(f"took {latency_ms:.1f} ms, want at most {max_ms} ms")
    except Exception as e:  # a bug or surprise fails this iteration, never the worker
        latency_ms = (time.perf_counter() - start) * 1000.0
        reasons.append(f"unexpected {type(e).__name__}: {e}")
    finally:
        if channel is not None:
            channel.close()
    return SoakIteration(number, latency_ms, " and ".join(reasons))


def _soak_worker(ctx: Context, numbers: range, deadline: float, own_channel: bool, ran: list[SoakIteration]) -> None:
    """Run iterations `numbers` in sequence, each starting at least
    --soak_min_time_ms_between_rpcs after the previous one started, none at or
    after `deadline` (a perf_counter time)."""
    gap_s = ctx.soak.min_time_ms_between_rpcs / 1000.0
    next_start = time.perf_counter()
    for number in numbers:
        if next_start >= deadline:
            return
        delay = next_start - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        started = time.perf_counter()
        if started >= deadline:
            return
        next_start = started + gap_s
        ran.append(_soak_iteration(ctx, number, own_channel))  # list.append is atomic


def _soak(ctx: Context, checks: Checks, name: str, own_channel: bool) -> None:
    """rpc_soak / channel_soak: --soak_num_threads workers, worker w running
    iterations w*k+1 .. (w+1)*k (k = iterations / threads); checks `completed`
    and `failures`, and sets the metrics."""
    soak = ctx.soak
    if own_channel and ctx.new_channel is None:
        raise RuntimeError("channel_soak needs a channel factory (Context.new_channel)")
    per_worker = soak.iterations // soak.num_threads
    ran: list[SoakIteration] = []
    deadline = time.perf_counter() + soak.overall_timeout_seconds
    workers = [
        threading.Thread(
            target=_soak_worker,
            args=(ctx, range(w * per_worker + 1, (w + 1) * per_worker + 1), deadline, own_channel, ran),
            name=f"{name}-{w}",
            daemon=True,  # a call grpcio never ends is the backstop's business (run_case)
        )
        for w in range(soak.num_threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    failed = sorted((it for it in ran if it.failure), key=lambda it: it.number)
    checks.metrics = soak_metrics(len(ran), len(failed), [it.latency_ms for it in ran if not it.failure])
    checks.check(
        "completed",
        len(ran) == soak.iterations,
        f"{name}: {len(ran)} of {soak.iterations} iterations ran within the overall timeout of "
        f"{soak.overall_timeout_seconds} s, want all {soak.iterations}",
    )
    reasons = "; ".join(f"iteration {it.number}: {it.failure}" for it in failed[:SOAK_REASONS_SHOWN])
    if len(failed) > SOAK_REASONS_SHOWN:
        reasons += f"; and {len(failed) - SOAK_REASONS_SHOWN} more"
    checks.check(
        "failures",
        len(failed) <= soak.max_failures,
        f"{name}: {len(failed)} of {len(ran)} iterations failed, want at most {soak.max_failures}: {reasons}",
    )


@case("completed", "failures", group="soak")
def rpc_soak(ctx: Context, checks: Checks) -> None:
    """--soak_iterations large_unary calls over the client's channel."""
    _soak(ctx, checks, "rpc_soak", own_channel=False)


@case("completed", "failures", group="soak")
def channel_soak(ctx: Context, checks: Checks) -> None:
    """As rpc_soak, but each iteration over a new channel of its own, closed after its call."""
    _soak(ctx, checks, "channel_soak", own_channel=True)


# --- the cases against the bad server (http2_negative, wire) ----------------------------


def _unary(rpc, request, timeout: float, metadata=None):
    """One unary call; returns (response or None, code, details) as grpcio reported them.

    The response is None also with OK: grpcio ends a unary call whose answer had
    no (complete) message with the status of the trailers, and returns None."""
    try:
        response, call = rpc.with_call(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as e:
        return None, e.code(), e.details()
    return response, call.code(), call.details()


def _came_back(response, code: grpc.StatusCode | None, details: str | None) -> str:
    """What a unary call returned, for a failure message: its status, and that
    there was no response message when grpcio said OK without one."""
    text = status_text(code, details)
    if code == grpc.StatusCode.OK and response is None:
        text += " and no response message"
    return text


class _BadServerCalls:
    """The calls of one case against the bad server: over a channel of its own
    (closed after, use it as a context manager), each a UnaryCall with
    large_unary's request, the metadata `x-interop-case: <case>` and the
    case's deadline."""

    def __init__(self, ctx: Context, name: str):
        if ctx.new_channel is None:
            raise RuntimeError(f"{name} needs a channel factory (Context.new_channel)")
        self._channel = ctx.new_channel()
        self._stub = test_pb2_grpc.TestServiceStub(self._channel)
        self._metadata = ((CASE_METADATA_KEY, name),)
        self._timeout = CASES[name].timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._channel.close()

    def call(self):
        """One call, waited for: (response or None, code, details)."""
        return _unary(self._stub.UnaryCall, _large_unary_request(), self._timeout, self._metadata)

    def start(self) -> grpc.Future:
        """One call, not waited for."""
        return self._stub.UnaryCall.future(_large_unary_request(), timeout=self._timeout, metadata=self._metadata)


def _expect_large_response(checks: Checks, prefix: str, what: str, outcome, parts: tuple[str, ...]) -> None:
    """`<prefix>status`: the call is OK; then the response payload's `parts`
    (`payload_size`, ...): 314159 zero bytes of type COMPRESSABLE."""
    response, code, details = outcome
    if not checks.status(prefix + "status", what, code, details, grpc.StatusCode.OK):
        return
    if response is None:
        checks.fail(
            prefix + "payload_size",
            f"{what} status = {_came_back(response, code, details)}, want a payload of {LARGE_RESPONSE_SIZE} bytes",
        )
        return
    checks.payload(prefix, f"{what} response", response.payload, LARGE_RESPONSE_SIZE, parts)


def _expect_not_ok(ctx: Context, checks: Checks, name: str) -> None:
    """One call that must not succeed: any status but OK (`not_ok`)."""
    with _BadServerCalls(ctx, name) as calls:
        response, code, details = calls.call()
    checks.check(
        "not_ok",
        code != grpc.StatusCode.OK,
        f"UnaryCall status = {_came_back(response, code, details)}, want any status but OK",
    )


@case(
    "first.status",
    "first.payload_size",
    "second.status",
    "second.payload_size",
    calls=2,
    group="http2_negative",
    pause_s=GOAWAY_PAUSE_S,
)
def goaway(ctx: Context, checks: Checks) -> None:
    """Two calls one second apart, the server sending GOAWAY after the first: both OK, 314159 bytes."""
    with _BadServerCalls(ctx, "goaway") as calls:
        _expect_large_response(checks, "first.", "first UnaryCall", calls.call(), ("size",))
        time.sleep(GOAWAY_PAUSE_S)
        _expect_large_response(checks, "second.", "second UnaryCall (after the GOAWAY)", calls.call(), ("size",))


@case("not_ok", group="http2_negative")
def rst_after_header(ctx: Context, checks: Checks) -> None:
    """The stream reset right after the response headers: the call does not succeed."""
    _expect_not_ok(ctx, checks, "rst_after_header")


@case("not_ok", group="http2_negative")
def rst_during_data(ctx: Context, checks: Checks) -> None:
    """The stream reset halfway through the response message: the call does not succeed."""
    _expect_not_ok(ctx, checks, "rst_during_data")


@case("not_ok", group="http2_negative")
def rst_after_data(ctx: Context, checks: Checks) -> None:
    """The stream reset after the response message, before the trailers: the call does not succeed."""
    _expect_not_ok(ctx, checks, "rst_after_data")


@case("status", "payload_size", group="http2_negative")
def ping(ctx: Context, checks: Checks) -> None:
    """PINGs before the headers, after them and after the data, each to be acknowledged: OK, 314159 bytes."""
    with _BadServerCalls(ctx, "ping") as calls:
        _expect_large_response(checks, "", "UnaryCall", calls.call(), ("size",))


@case("status", "payload_size", "payload_type", calls=2, group="http2_negative")
def max_streams(ctx: Context, checks: Checks) -> None:
    """A server of one stream at a time: one call, then 10 at the same time on the
    same channel, all OK with 314159 bytes of type COMPRESSABLE."""
    parts = ("size", "type")
    with _BadServerCalls(ctx, "max_streams") as calls:
        _expect_large_response(checks, "", "UnaryCall 1", calls.call(), parts)
        started = [calls.start() for _ in range(MAX_STREAMS_CONCURRENT)]
        for i, future in enumerate(started, start=2):
            try:
                response = future.result()
            except grpc.RpcError as e:
                outcome = (None, e.code(), e.details())
            else:
                outcome = (response, future.code(), future.details())
            _expect_large_response(
                checks, "", f"UnaryCall {i} (one of {MAX_STREAMS_CONCURRENT} at once)", outcome, parts
            )


@case("status", "payload_size", "payload_body", group="http2_negative")
def data_frame_padding(ctx: Context, checks: Checks) -> None:
    """The response in DATA frames of 5 bytes and 255 bytes of padding: OK, 314159 zero bytes."""
    with _BadServerCalls(ctx, "data_frame_padding") as calls:
        _expect_large_response(checks, "", "UnaryCall", calls.call(), ("size", "body"))


@case("status", "payload_size", "payload_body", group="http2_negative")
def no_df_padding_sanity_test(ctx: Context, checks: Checks) -> None:
    """As data_frame_padding without the padding: OK, 314159 zero bytes."""
    with _BadServerCalls(ctx, "no_df_padding_sanity_test") as calls:
        _expect_large_response(checks, "", "UnaryCall", calls.call(), ("size", "body"))


@dataclass(frozen=True)
class WireCase:
    """A row of the wire table: the code the call must end with, and its
    deadline when not RPC_TIMEOUT_S."""

    code: grpc.StatusCode
    timeout_s: float | None = WIRE_TIMEOUT_S


WIRE_CASES: dict[str, WireCase] = {
    # HTTP statuses without grpc-status: the spec's HTTP-to-gRPC mapping.
    "http_400": WireCase(grpc.StatusCode.INTERNAL),
    "http_401": WireCase(grpc.StatusCode.UNAUTHENTICATED),
    "http_403": WireCase(grpc.StatusCode.PERMISSION_DENIED),
    "http_404": WireCase(grpc.StatusCode.UNIMPLEMENTED),
    "http_429": WireCase(grpc.StatusCode.UNAVAILABLE),
    "http_502": WireCase(grpc.StatusCode.UNAVAILABLE),
    "http_503": WireCase(grpc.StatusCode.UNAVAILABLE),
    "http_504": WireCase(grpc.StatusCode.UNAVAILABLE),
    # "200 is UNKNOWN because there should be a grpc-status".
    "missing_grpc_status": WireCase(grpc.StatusCode.UNKNOWN),
    "non_grpc_content_type": WireCase(grpc.StatusCode.UNKNOWN),
    "unparsable_grpc_status": WireCase(grpc.StatusCode.UNKNOWN),
    # statuscodes.md and compression.md.
    "truncated_message": WireCase(grpc.StatusCode.INTERNAL),
    "invalid_protobuf": WireCase(grpc.StatusCode.INTERNAL),
    "response_too_large": WireCase(grpc.StatusCode.RESOURCE_EXHAUSTED),
    "compressed_without_encoding": WireCase(grpc.StatusCode.INTERNAL),
    "unknown_response_encoding": WireCase(grpc.StatusCode.INTERNAL),
    "two_responses": WireCase(grpc.StatusCode.UNIMPLEMENTED),
    "no_response": WireCase(grpc.StatusCode.UNIMPLEMENTED),
    "connection_dropped": WireCase(grpc.StatusCode.UNAVAILABLE),
    "silent_server": WireCase(grpc.StatusCode.DEADLINE_EXCEEDED, SILENT_SERVER_TIMEOUT_S),
}
"""The wire table of CONTRACT.md: case -> the code its one UnaryCall must end with."""


def wire_case(name: str, ctx: Context, checks: Checks) -> None:
    """One UnaryCall answered brokenly as `x-interop-case: <name>` asks: it ends
    with the code of the case's row (`status_code`; the message is reported)."""
    want = WIRE_CASES[name].code
    with _BadServerCalls(ctx, name) as calls:
        response, code, details = calls.call()
    checks.check(
        "status_code",
        code == want,
        f"UnaryCall status = {_came_back(response, code, details)}, want {status_text(want)}",
    )


def _register_wire_cases() -> None:
    for name, row in WIRE_CASES.items():
        CASES[name] = Case(
            name, functools.partial(wire_case, name), ("status_code",), group="wire", timeout_s=row.timeout_s
        )


_register_wire_cases()


# --- the tls cases ----------------------------------------------------------------------


# A refused handshake is a connection that never became usable: UNAVAILABLE
# (CONTRACT.md, "TLS refusals"), whichever side refused.
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def _tls_cases(ctx: Context) -> TlsCases:
    if ctx.tls is None:
        raise RuntimeError("the tls cases need the client's TLS settings and the other CA's files (Context.tls)")
    return ctx.tls


def _tls_empty_call(checks: Checks, check: str, what: str, tls: TlsCases, settings: TlsSettings, want) -> None:
    """One EmptyCall over a TLS channel of its own, made as `settings` say and
    closed after: check `check` that it ends with `want`."""
    channel = tls_channel(tls.host, tls.port, settings)
    try:
        _, code, details = _unary(test_pb2_grpc.TestServiceStub(channel).EmptyCall, empty_pb2.Empty(), RPC_TIMEOUT_S)
    finally:
        channel.close()
    checks.status(check, what, code, details, want)


@case("status", group="tls")
def mtls_accepted(ctx: Context, checks: Checks) -> None:
    """EmptyCall over TLS with the right CA, name and client certificate: OK."""
    tls = _tls_cases(ctx)
    what = "EmptyCall over mutual TLS"
    _tls_empty_call(checks, "status", what, tls, tls.settings, grpc.StatusCode.OK)


@case("status_code", group="tls")
def tls_untrusted_server(ctx: Context, checks: Checks) -> None:
    """EmptyCall trusting only other-ca.pem, which did not sign the server's certificate: UNAVAILABLE."""
    tls = _tls_cases(ctx)
    what = "EmptyCall over TLS trusting only other-ca.pem"
    _tls_empty_call(checks, "status_code", what, tls, replace(tls.settings, ca=tls.other_ca), _UNAVAILABLE)


@case("status_code", group="tls")
def tls_wrong_name(ctx: Context, checks: Checks) -> None:
    """EmptyCall verifying the server as wrong.name.invalid: UNAVAILABLE."""
    tls = _tls_cases(ctx)
    what = f"EmptyCall over TLS verifying the server as {WRONG_NAME}"
    _tls_empty_call(checks, "status_code", what, tls, replace(tls.settings, server_name=WRONG_NAME), _UNAVAILABLE)


@case("status_code", group="tls")
def mtls_no_client_cert(ctx: Context, checks: Checks) -> None:
    """EmptyCall presenting no client certificate to a server that requires one: UNAVAILABLE."""
    tls = _tls_cases(ctx)
    what = "EmptyCall over TLS presenting no client certificate"
    _tls_empty_call(checks, "status_code", what, tls, replace(tls.settings, client_cert=None), _UNAVAILABLE)


@case("status_code", group="tls")
def mtls_other_ca_client(ctx: Context, checks: Checks) -> None:
    """EmptyCall presenting other-client.pem, signed by the other CA: UNAVAILABLE."""
    tls = _tls_cases(ctx)
    what = "EmptyCall over TLS presenting other-client.pem (signed by other-ca.pem)"
    settings = replace(tls.settings, client_cert=tls.other_client)
    _tls_empty_call(checks, "status_code", what, tls, settings, _UNAVAILABLE)


# --- the catalogue ----------------------------------------------------------------------

BAD_INPUT_CASES = (
    "oversized_request",
    "content_type_text_plain",
    "content_type_missing",
    "unknown_request_encoding",
    "truncated_request_message",
    "invalid_request_protobuf",
    "unknown_service",
    "unknown_method",
    "request_compressed_without_encoding",
    "invalid_grpc_timeout",
    "grpc_timeout_too_many_digits",
    "grpc_timeout_overflow",
    "metadata_64k",
    "metadata_1m",
    "streams_500",
    "held_streams_64",
    "unfinished_prefaces_200",
    "truncated_frame",
)
"""The bad_input cases: the bad client of fixtures/ plays them against servers;
no client does, so this one rejects them as `--test_case` names (see parse_cases)."""

CATALOGUE = (*CASES, *BAD_INPUT_CASES)
"""Every case name of the catalogue (src/cases.rs), in its order."""


# --- running ----------------------------------------------------------------------------


def case_bound_s(spec: Case, soak: SoakOptions | None = None) -> float:
    """How long a case may take before the backstop fails it: its deadline per
    call made one after the other, its pauses, plus BACKSTOP_S for grpcio to
    end the last.
    A soak case starts no iteration after its overall timeout, and the last one
    started has the per-iteration maximum as its deadline."""
    if spec.soak:
        soak = soak or SoakOptions()
        return soak.overall_timeout_seconds + soak.per_iteration_max_acceptable_latency_ms / 1000.0 + BACKSTOP_S
    return spec.calls * spec.timeout + spec.pause_s + BACKSTOP_S


def _play(spec: Case, ctx: Context, checks: Checks) -> None:
    """Run one case function; a bug or surprise in it is a failed check, never a crash."""
    try:
        spec.function(ctx, checks)
    except Exception as e:
        if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
            checks.fail(spec.status_check, f"unexpected RPC error: {status_text(e.code(), e.details())}")
        else:
            checks.fail(spec.status_check, f"unexpected {type(e).__name__}: {e}")


def _keep_to_row(spec: Case, checks: Checks) -> None:
    """A check named outside the case's row, or a passed case that does not name
    its whole row, is a bug of this client: the result fails and says so."""
    named = set(checks.results) | set(checks.not_checked)
    stray = [name for name in sorted(named) if name not in spec.checks]
    if stray:
        checks.fail(spec.status_check, f"client bug: {spec.name} made checks outside its row: {', '.join(stray)}")
    elif not checks.failures:
        missing = [name for name in spec.checks if name not in named]
        if missing:
            checks.fail(spec.status_check, f"client bug: {spec.name} passed without checks {', '.join(missing)}")


def run_case(ctx: Context, name: str) -> dict:
    """Run one case and return its result event (the JSON object the client prints).

    The case runs in a daemon thread. grpcio enforces every deadline; should it
    not end a call BACKSTOP_S after its deadline, the case fails here and the
    thread is left behind (it holds no lock, and the client goes on)."""
    start = time.perf_counter()
    spec = CASES[name]
    checks = Checks()
    if name in UNSUPPORTED:
        outcome, message = "unsupported", UNSUPPORTED[name]
    else:
        worker = threading.Thread(target=_play, args=(spec, ctx, checks), name=f"case-{name}", daemon=True)
        worker.start()
        bound = case_bound_s(spec, ctx.soak if spec.soak else None)
        worker.join(bound)
        if worker.is_alive():
            # The stuck thread may still record into `checks`: report a copy.
            checks = checks.copy()
            checks.fail(
                spec.status_check,
                f"{name} did not end within {bound:g} s: grpcio did not end a call {BACKSTOP_S:g} s after its deadline",
            )
        _keep_to_row(spec, checks)
        outcome = FAILED if checks.failures else PASSED
        message = "; ".join(checks.failures)
    result = {
        "event": "result",
        "case": name,
        "outcome": outcome,
        "duration_ms": round((time.perf_counter() - start) * 1000.0, 2),
        "message": message,
        # In the order of the case's row; only its names (see _keep_to_row).
        "checks": {check: checks.results[check] for check in spec.checks if check in checks.results},
        "not_checked": {check: checks.not_checked[check] for check in spec.checks if check in checks.not_checked},
    }
    if checks.metrics is not None:  # the soak cases only
        result["metrics"] = checks.metrics
    return result
