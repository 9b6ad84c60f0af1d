"""The Python server under held streams: it keeps answering new connections, and
refuses calls beyond its limit at once instead of leaving them waiting."""

import contextlib
import threading
import time

import grpc
import pytest

from interop import cases, channels, server
from interop._gen import empty_pb2, test_pb2_grpc

HELD_STREAMS = 64
"""As the bad client's held_streams_64 (CONTRACT.md, "Bad input")."""

ALIVE_WITHIN_S = 5.0
"""The contract's bound for the alive probe: EmptyCall on a new connection, OK within 5 s."""

REFUSED_WITHIN_S = 1.0
"""A call beyond the limit is refused "fast": on loopback that is milliseconds; 1 s
is far above it and far below a call left waiting for its deadline."""


class _StartedStreams:
    """Counts the FullDuplexCall handlers the server has started (each on a pool thread)."""

    def __init__(self):
        self._condition = threading.Condition()
        self.count = 0

    def wrap(self, full_duplex_call):
        def counted(servicer, request_iterator, context):
            with self._condition:
                self.count += 1
                self._condition.notify_all()
            yield from full_duplex_call(servicer, request_iterator, context)

        return counted

    def wait_for(self, n: int, timeout: float) -> int:
        """Wait until `n` handlers started or `timeout` passed; returns how many did."""
        with self._condition:
            self._condition.wait_for(lambda: self.count >= n, timeout)
            return self.count


@pytest.fixture
def started(monkeypatch):
    """The server's FullDuplexCall, counting its starts; then the real server, started after the patch."""
    streams = _StartedStreams()
    monkeypatch.setattr(
        server.TestServiceServicer,
        "FullDuplexCall",
        streams.wrap(server.TestServiceServicer.FullDuplexCall),
    )
    running = server.start_server(port=0)
    yield running, streams
    running.stop(grace=0.5)


@contextlib.contextmanager
def _held_streams(port: int, n: int):
    """`n` FullDuplexCall streams on one channel that send nothing and never
    half-close, until the block ends (then cancelled, and the channel closed)."""
    channel = channels.make_channel("127.0.0.1", port)
    stub = test_pb2_grpc.TestServiceStub(channel)
    outboxes = [cases.Outbox() for _ in range(n)]
    calls = []
    try:
        # The deadline only bounds a test that goes wrong; the streams are cancelled long before it.
        calls = [stub.FullDuplexCall(outbox, timeout=60) for outbox in outboxes]
        yield calls
    finally:
        for call in calls:
            call.cancel()
        for outbox in outboxes:
            outbox.close()
        channel.close()


def _empty_call_on_a_new_channel(port: int, timeout: float):
    """EmptyCall over a channel (so a connection) of its own; returns (code, details, seconds taken)."""
    channel = channels.make_channel("127.0.0.1", port)
    start = time.monotonic()
    try:
        test_pb2_grpc.TestServiceStub(channel).EmptyCall(empty_pb2.Empty(), timeout=timeout)
    except grpc.RpcError as e:
        return e.code(), e.details(), time.monotonic() - start
    finally:
        channel.close()
    return grpc.StatusCode.OK, "", time.monotonic() - start


def test_the_limit_leaves_threads_to_spare():
    # Every RPC admitted finds a thread: the refusal happens before the pool can be full.
    assert HELD_STREAMS < server.MAX_CONCURRENT_RPCS < server.MAX_WORKERS


def test_new_connection_answered_while_64_streams_are_held(started):
    running, streams = started
    with _held_streams(running.port, HELD_STREAMS):
        # Readiness is the server having started every held stream, not a sleep;
        # not asserted before the probe, so that a starving server fails on the probe itself.
        began = streams.wait_for(HELD_STREAMS, ALIVE_WITHIN_S)
        code, details, took = _empty_call_on_a_new_channel(running.port, ALIVE_WITHIN_S)
        assert code == grpc.StatusCode.OK, f"EmptyCall on a new connection: {code} {details!r} after {took:.2f} s"
        assert took < ALIVE_WITHIN_S
        assert began == HELD_STREAMS, f"{began} of {HELD_STREAMS} held streams started on the server"


def test_calls_beyond_the_limit_are_refused_at_once(started):
    running, streams = started
    limit = server.MAX_CONCURRENT_RPCS
    with _held_streams(running.port, limit):
        assert streams.wait_for(limit, 10) == limit
        code, details, took = _empty_call_on_a_new_channel(running.port, ALIVE_WITHIN_S)
        assert (code, details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
        assert took < REFUSED_WITHIN_S
    # Once the streams are gone, the server serves again. Their cancellation
    # reaches the server asynchronously: wait for it with a bound, not a sleep.
    deadline = time.monotonic() + ALIVE_WITHIN_S
    while True:
        code, details, _ = _empty_call_on_a_new_channel(running.port, ALIVE_WITHIN_S)
        if code == grpc.StatusCode.OK or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # a polling interval: each refusal comes back at once
    assert code == grpc.StatusCode.OK, f"EmptyCall after the held streams were cancelled: {code} {details!r}"
