"""The client's load mode (`--load`, implementations/CONTRACT.md, "Load mode"):
`concurrency` workers keep calls going over `connections` grpc.aio channels
(each its own HTTP/2 connection) for a warm-up, then a measured window; the
result is one JSON line with the count, the errors and the latency percentiles
of what ended inside the window.

Everything runs on one asyncio event loop: the workers are tasks, so whether a
call ended inside the window is decided by the window's phase at the moment its
worker resumes, which is also the moment its end is timed.
"""

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from interop import _flags
from interop._gen import messages_pb2, test_pb2_grpc
from interop.cases import nearest_rank
from interop.channels import make_aio_channel

log = logging.getLogger("interop.load")

LOADS = ("unary", "ping_pong")
"""The loads of `--load`."""

MAX_PAYLOAD_BYTES = 1 << 20
"""The largest `--load_payload_bytes`: 1 MiB."""

UNARY_DEADLINE_S = 10.0
"""The deadline of each UnaryCall."""

STREAM_DEADLINE_EXTRA_S = 10.0
"""A ping_pong stream's deadline is warm-up + duration + this."""

WIND_DOWN_S = 10.0
"""After the window: how long the workers get to finish what is in flight
(a unary call, a round trip, then the stream's half-close and drain)."""

CANCEL_S = 2.0
"""How long workers still running after WIND_DOWN_S get to end once cancelled,
and channels to close."""

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class LoadOptions:
    """The `--load*` flags."""

    load: str
    concurrency: int = 50
    connections: int = 1
    warmup_ms: int = 1000
    duration_ms: int = 5000
    payload_bytes: int = 100

    def validate(self) -> None:
        """Raise UsageError on what the contract calls bad usage (and on negative numbers)."""
        if self.load not in LOADS:
            raise _flags.UsageError(f"argument --load: unknown load {self.load!r} (known: {', '.join(LOADS)})")
        for flag, value in (
            ("--load_concurrency", self.concurrency),
            ("--load_connections", self.connections),
            ("--load_duration_ms", self.duration_ms),
        ):
            if value <= 0:
                raise _flags.UsageError(f"argument {flag}: {value}, want a positive number")
        for flag, value in (("--load_warmup_ms", self.warmup_ms), ("--load_payload_bytes", self.payload_bytes)):
            if value < 0:
                raise _flags.UsageError(f"argument {flag}: {value}, want a non-negative number")
        if self.connections > self.concurrency:
            raise _flags.UsageError(
                f"argument --load_connections: {self.connections} connections for {self.concurrency} workers "
                "(--load_concurrency), want at most one connection per worker"
            )
        if self.payload_bytes > MAX_PAYLOAD_BYTES:
            raise _flags.UsageError(
                f"argument --load_payload_bytes: {self.payload_bytes}, want at most {MAX_PAYLOAD_BYTES} (1 MiB)"
            )


class Phase(enum.Enum):
    WARMUP = "warmup"
    OPEN = "open"
    CLOSED = "closed"


class Window:
    """The measured window and what ended inside it. Successes and errors
    reported while the window is not open are not counted."""

    def __init__(self) -> None:
        self.phase = Phase.WARMUP
        self.opened_ns = 0
        self.closed_ns = 0
        self.latencies_ns: list[int] = []
        self.errors = 0
        self.first_error = ""

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def open(self) -> None:
        self.opened_ns = time.perf_counter_ns()
        self.phase = Phase.OPEN

    def close(self) -> None:
        self.closed_ns = time.perf_counter_ns()
        self.phase = Phase.CLOSED

    def success(self, latency_ns: int) -> None:
        if self.phase is Phase.OPEN:
            self.latencies_ns.append(latency_ns)

    def error(self, text: str) -> None:
        if self.phase is Phase.OPEN:
            self.errors += 1
            if self.errors == 1:
                self.first_error = text

    @property
    def elapsed_ms(self) -> float:
        return (self.closed_ns - self.opened_ns) / 1e6


def status_text(code: grpc.StatusCode | None, details: str | None) -> str:
    """A status as `CODE: message`, the code as grpcio names it (UNAVAILABLE, DEADLINE_EXCEEDED, ...)."""
    name = code.name if code is not None else "UNKNOWN"
    return f"{name}: {details or ''}"


def latency_summary_us(latencies_ns: list[int]) -> dict[str, float] | None:
    """The nearest-rank p50, p90 and p99 and the largest of the latencies, in
    microseconds with one decimal; None when there are none."""
    if not latencies_ns:
        return None
    ordered = sorted(latencies_ns)
    summary = {f"p{p}": round(nearest_rank(ordered, p) / 1000, 1) for p in PERCENTILES}
    summary["max"] = round(ordered[-1] / 1000, 1)
    return summary


def result_line(options: LoadOptions, window: Window) -> dict:
    """The `{"event":"load",...}` line of a window that has closed."""
    count = len(window.latencies_ns)
    elapsed_ms = window.elapsed_ms
    return {
        "event": "load",
        "load": options.load,
        "concurrency": options.concurrency,
        "connections": options.connections,
        "warmup_ms": options.warmup_ms,
        "duration_ms": options.duration_ms,
        "payload_bytes": options.payload_bytes,
        "count": count,
        "errors": window.errors,
        "elapsed_ms": round(elapsed_ms, 1),
        "qps": round(count / elapsed_ms * 1000, 1) if elapsed_ms > 0 else 0.0,
        "latency_us": latency_summary_us(window.latencies_ns),
        "first_error": window.first_error,
    }


# --- the workers --------------------------------------------------------------------------


async def _unary_worker(
    stub: test_pb2_grpc.TestServiceStub, request: messages_pb2.SimpleRequest, size: int, window: Window
) -> None:
    """UnaryCall after UnaryCall, one in flight, until the window has closed."""
    while not window.closed:
        start = time.perf_counter_ns()
        try:
            response = await stub.UnaryCall(request, timeout=UNARY_DEADLINE_S)
        except grpc.aio.AioRpcError as e:
            window.error(status_text(e.code(), e.details()))
            continue
        latency_ns = time.perf_counter_ns() - start
        got = len(response.payload.body)
        if got == size:
            window.success(latency_ns)
        else:
            window.error(f"UnaryCall response payload {got} bytes, want {size}")


async def _round_trips(
    call: grpc.aio.StreamStreamCall, request: messages_pb2.StreamingOutputCallRequest, size: int, window: Window
) -> str | None:
    """Round trips on one stream until the window has closed (None) or the
    stream failed (why, as the error to count)."""
    while not window.closed:
        start = time.perf_counter_ns()
        try:
            await call.write(request)
            response = await call.read()
        except grpc.aio.AioRpcError as e:
            return status_text(e.code(), e.details())
        except asyncio.InvalidStateError:
            # write() on a stream that has already ended: its status says why.
            return status_text(await call.code(), await call.details())
        if response is grpc.aio.EOF:
            # read() raises on a status other than OK, so this one ended OK.
            status = status_text(await call.code(), await call.details())
            return f"FullDuplexCall ended with {status} before its response"
        latency_ns = time.perf_counter_ns() - start
        got = len(response.payload.body)
        if got == size:
            window.success(latency_ns)
        else:
            window.error(f"FullDuplexCall response payload {got} bytes, want {size}")
    return None


async def _drain(call: grpc.aio.StreamStreamCall) -> None:
    """Half-close a stream and read it to its end (nothing of it is counted)."""
    try:
        await call.done_writing()
        while await call.read() is not grpc.aio.EOF:
            pass
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
        log.debug("stream ended after the window: %s", e)


async def _ping_pong_worker(
    stub: test_pb2_grpc.TestServiceStub,
    request: messages_pb2.StreamingOutputCallRequest,
    size: int,
    window: Window,
    stream_timeout_s: float,
) -> None:
    """One FullDuplexCall stream with one round trip in flight; a stream that
    fails counts one error and is replaced by a new one. After the window the
    stream is half-closed and drained."""
    while not window.closed:
        call = stub.FullDuplexCall(timeout=stream_timeout_s)
        try:
            failure = await _round_trips(call, request, size, window)
            if failure is None:
                await _drain(call)
                return
        finally:
            # No-op on a stream that has ended; ends one left behind by a cancellation.
            call.cancel()
        window.error(failure)


# --- the run ------------------------------------------------------------------------------


async def _sleep_until(deadline_ns: int) -> None:
    while (left_ns := deadline_ns - time.perf_counter_ns()) > 0:
        await asyncio.sleep(left_ns / 1e9)


async def run(
    options: LoadOptions,
    host: str,
    port: int,
    credentials: grpc.ChannelCredentials | None = None,
    host_override: str = "",
    on_ready: Callable[[], None] = lambda: None,
) -> dict:
    """Play the load against host:port (TLS with `credentials`, verifying the
    server as `host_override` when set) and return the result line. `on_ready`
    is called once the channels are made, just before the workers start."""
    size = options.payload_bytes
    payload = messages_pb2.Payload(body=bytes(size))
    # Built once and shared by every worker: grpcio only serializes a request, never changes it.
    if options.load == "unary":
        request = messages_pb2.SimpleRequest(response_size=size, payload=payload)
    else:
        request = messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=size)], payload=payload
        )
    stream_timeout_s = (options.warmup_ms + options.duration_ms) / 1000 + STREAM_DEADLINE_EXTRA_S

    channels = [make_aio_channel(host, port, credentials, host_override) for _ in range(options.connections)]
    try:
        for channel in channels:
            # Start connecting now; the warm-up covers what is left of it.
            channel.get_state(try_to_connect=True)
        stubs = [test_pb2_grpc.TestServiceStub(channel) for channel in channels]
        log.info(
            "load %s: %d worker(s) on %d connection(s) to %s:%d, payload %d bytes, warm-up %d ms, window %d ms",
            options.load,
            options.concurrency,
            options.connections,
            host,
            port,
            size,
            options.warmup_ms,
            options.duration_ms,
        )
        on_ready()

        window = Window()
        t0 = time.perf_counter_ns()
        workers = []
        for i in range(options.concurrency):
            stub = stubs[i % options.connections]
            if options.load == "unary":
                worker = _unary_worker(stub, request, size, window)
            else:
                worker = _ping_pong_worker(stub, request, size, window, stream_timeout_s)
            workers.append(asyncio.create_task(worker, name=f"load-worker-{i}"))

        await _sleep_until(t0 + options.warmup_ms * 1_000_000)
        window.open()
        await _sleep_until(window.opened_ns + options.duration_ms * 1_000_000)
        window.close()

        done, pending = await asyncio.wait(workers, timeout=WIND_DOWN_S)
        if pending:
            log.warning("%d worker(s) still busy %.0f s after the window; cancelling them", len(pending), WIND_DOWN_S)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=CANCEL_S)
        for task in done:
            # A worker that died of something else than an RPC error is a bug: show it.
            if task.exception() is not None:
                raise task.exception()
    finally:
        # close() cancels whatever is still active on the channel.
        _, unclosed = await asyncio.wait([asyncio.create_task(ch.close()) for ch in channels], timeout=CANCEL_S)
        if unclosed:
            log.warning("%d channel(s) did not close within %.0f s", len(unclosed), CANCEL_S)
    return result_line(options, window)
