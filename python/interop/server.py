"""The interop server: Greeter, TestService, health and reflection (implementations/CONTRACT.md)."""

import contextlib
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from interop import _flags
from interop._gen import empty_pb2, helloworld_pb2, helloworld_pb2_grpc, messages_pb2, test_pb2, test_pb2_grpc
from interop.channels import ClientCert, read_client_cert, tls_credentials

log = logging.getLogger("interop.server")

IMPLEMENTATION = "python"
LIBRARY = f"grpcio {grpc.__version__}"

ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"

# grpcio's sync server runs every RPC, from its start to its end, on one thread
# of this pool; a stream the client holds open (no message, no half-close) holds
# its thread as long. With more RPCs than threads, grpcio queues the RPC for a
# thread that may never come free: the server answers no one, not even a new
# connection's EmptyCall (32 threads and 64 held FullDuplexCall streams did
# exactly that, the bad client's held_streams_64). So the number of RPCs is
# capped below the number of threads: grpcio refuses an RPC beyond the cap at
# once with RESOURCE_EXHAUSTED ("Concurrent RPC limit exceeded!"), and every
# RPC it admits finds a free thread.
#
# MAX_CONCURRENT_RPCS = 128: twice the 64 streams of held_streams_64, so that
# while they are held the alive probe and the matrix's other clients (each one
# or a few RPCs at a time, --soak_num_threads for the soak cases) are served,
# not refused. Above it, a burst (streams_500) is refused fast instead of queued.
MAX_CONCURRENT_RPCS = 128
# MAX_WORKERS = 160: the cap plus 32 spare threads. grpcio counts an RPC as done
# in the done-callback of its pool task, a moment before the thread is free
# again, so an RPC admitted in that moment waits for a thread briefly; the spare
# threads make even that wait rare. ThreadPoolExecutor starts threads only as
# work arrives, so an idle server does not pay for them.
MAX_WORKERS = 160
# Graceful stop on SIGTERM/SIGINT: in-flight RPCs get this long, then are cancelled,
# which keeps the whole shutdown within the contract's "couple of seconds".
STOP_GRACE_S = 1.0

SERVICE_NAMES = (
    helloworld_pb2.DESCRIPTOR.services_by_name["Greeter"].full_name,
    test_pb2.DESCRIPTOR.services_by_name["TestService"].full_name,
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    reflection.SERVICE_NAME,
)

UNSUPPORTED = {
    case: (
        "a grpcio server cannot see whether a request message was compressed: handlers get only "
        "the decompressed message, and grpc-encoding is not in invocation_metadata(), so "
        "expect_compressed cannot be checked"
    )
    for case in ("client_compressed_unary", "client_compressed_streaming")
}
"""Cases this server cannot serve as the contract says, and why. The manifest
(implementations/python.toml, [server.unsupported]) lists the same."""

_STATUS_BY_CODE = {status.value[0]: status for status in grpc.StatusCode}


class GreeterServicer(helloworld_pb2_grpc.GreeterServicer):
    """helloworld.Greeter; every reply starts with the configured greeting."""

    def __init__(self, greeting: str):
        self._greeting = greeting

    def SayHello(self, request, context):
        return helloworld_pb2.HelloReply(message=f"{self._greeting} {request.name}", index=0)

    def SayHelloStream(self, request, context):
        for i in range(1, request.count + 1):
            yield helloworld_pb2.HelloReply(
                message=f"{self._greeting} {request.name} ({i} of {request.count})", index=i
            )

    def SayHelloToAll(self, request_iterator, context):
        names = [request.name for request in request_iterator]
        return helloworld_pb2.HelloReply(message=f"{self._greeting} {', '.join(names)}", index=len(names))

    def SayHelloChat(self, request_iterator, context):
        # A generator over the request iterator: each reply is produced as soon
        # as its request arrives, never after half-close only.
        for index, request in enumerate(request_iterator, start=1):
            yield helloworld_pb2.HelloReply(message=f"{self._greeting} {request.name}", index=index)


class _Call:
    """Per-call TestService behaviour shared by all methods: metadata echo,
    response compression and the requested status."""

    def __init__(self, context: grpc.ServicerContext):
        self._context = context
        self._echo_initial = None
        self._started = False
        self._compressing = False
        for key, value in context.invocation_metadata() or ():
            if key == ECHO_INITIAL_KEY:
                self._echo_initial = value
            elif key == ECHO_TRAILING_KEY:
                # Set at once: grpcio sends these trailers with whatever status
                # the call ends with, error statuses included.
                context.set_trailing_metadata(((ECHO_TRAILING_KEY, value),))

    def start(self, compress_some: bool) -> None:
        """Fix the call's compression and send the echoed headers (once per call).

        grpcio applies set_compression() through the initial metadata, so it must
        be decided before headers go out; messages that must stay uncompressed
        are then marked one by one with disable_next_message_compression().
        """
        if self._started:
            return
        if compress_some:
            self._context.set_compression(grpc.Compression.Gzip)
            self._compressing = True
        if self._echo_initial is not None:
            self._context.send_initial_metadata(((ECHO_INITIAL_KEY, self._echo_initial),))
        self._started = True

    def before_message(self, compressed: bool) -> None:
        """Choose the compression of the next response message."""
        if compressed and not self._compressing:
            log.warning("a response asked for compression, but this call's compression was already fixed to none")
        if self._compressing and not compressed:
            self._context.disable_next_message_compression()

    def apply_status(self, status: messages_pb2.EchoStatus) -> None:
        """End the call with the requested status when its code is not OK (raises)."""
        if status.code == 0:
            return
        code = _STATUS_BY_CODE.get(status.code)
        if code is None:
            log.warning("response_status code %d is not a gRPC status code; using UNKNOWN", status.code)
            code = grpc.StatusCode.UNKNOWN
        self._context.abort(code, status.message)


def _payload(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _any_compressed(requests) -> bool:
    return any(p.compressed.value for request in requests for p in request.response_parameters)


class TestServiceServicer(test_pb2_grpc.TestServiceServicer):
    """grpc.testing.TestService, per the contract's "What every server does".

    `expect_compressed` is ignored: a grpcio server only ever sees the
    decompressed message bytes, never the message's compressed flag (see
    UNSUPPORTED).
    """

    def EmptyCall(self, request, context):
        _Call(context).start(compress_some=False)
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        call = _Call(context)
        call.start(compress_some=request.response_compressed.value)
        call.apply_status(request.response_status)
        return messages_pb2.SimpleResponse(payload=_payload(request.response_size))

    def CacheableUnaryCall(self, request, context):
        return self.UnaryCall(request, context)

    def StreamingOutputCall(self, request, context):
        call = _Call(context)
        call.start(compress_some=_any_compressed([request]))
        call.apply_status(request.response_status)
        yield from self._respond(call, request)

    def StreamingInputCall(self, request_iterator, context):
        call = _Call(context)
        call.start(compress_some=False)
        total = sum(len(request.payload.body) for request in request_iterator)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        call = _Call(context)
        for request in request_iterator:
            # Headers wait for the first request, which decides the call's
            # compression; an empty stream still gets its echoed headers below.
            call.start(compress_some=_any_compressed([request]))
            call.apply_status(request.response_status)
            yield from self._respond(call, request)
        call.start(compress_some=False)

    def HalfDuplexCall(self, request_iterator, context):
        call = _Call(context)
        requests = list(request_iterator)
        call.start(compress_some=_any_compressed(requests))
        for request in requests:
            call.apply_status(request.response_status)
            yield from self._respond(call, request)

    def UnimplementedCall(self, request, context):
        # Not implemented on purpose (the unimplemented_method case). The
        # generated base raises NotImplementedError, which grpcio also turns into
        # UNIMPLEMENTED but logs as a traceback; abort() says the same quietly.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    @staticmethod
    def _respond(call: _Call, request):
        for params in request.response_parameters:
            if params.interval_us > 0:
                time.sleep(params.interval_us / 1e6)
            call.before_message(params.compressed.value)
            yield messages_pb2.StreamingOutputCallResponse(payload=_payload(params.size))


@dataclass
class Running:
    """A started server and the port it really bound."""

    server: grpc.Server
    port: int
    tls: bool

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        # wait() is bounded too: stop() cancels what is left once grace runs out.
        self.server.stop(grace).wait(grace + 1.0)


class BindError(Exception):
    """The server could not bind its port."""


def start_server(
    port: int = 0,
    greeting: str = "Hello",
    tls_cert_key: tuple[bytes, bytes] | None = None,
    client_ca: bytes | None = None,
) -> Running:
    """Build, bind and start the server; `tls_cert_key` = (certificate chain PEM, key PEM) for TLS;
    with it, `client_ca` (PEM) makes it mutual TLS: a client must present a certificate signed by that CA."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="interop-rpc"),
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        # grpcio sets SO_REUSEPORT by default, which lets a second server "bind"
        # a port that is already taken; the contract wants a bind failure instead.
        options=[("grpc.so_reuseport", 0)],
    )
    helloworld_pb2_grpc.add_GreeterServicer_to_server(GreeterServicer(greeting), server)
    test_pb2_grpc.add_TestServiceServicer_to_server(TestServiceServicer(), server)
    health_servicer = health.HealthServicer()
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)

    credentials = None
    if tls_cert_key is not None:
        # require_client_auth: the handshake fails without a client certificate
        # that chains to client_ca (C-core's GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
        credentials = grpc.ssl_server_credentials(
            [(tls_cert_key[1], tls_cert_key[0])],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
    bound = _bind(server, port, credentials)
    server.start()
    return Running(server=server, port=bound, tls=tls_cert_key is not None)


def _bind(server: grpc.Server, port: int, credentials: grpc.ServerCredentials | None) -> int:
    # "[::]" is dual-stack, so 127.0.0.1, ::1 and localhost all reach it; where
    # IPv6 is unavailable, fall back to IPv4 only. grpcio's add_*_port returns 0
    # or raises RuntimeError on failure, depending on the version: handle both.
    errors = []
    for host in ("[::]", "0.0.0.0"):
        address = f"{host}:{port}"
        with _fd2_captured() as core_log:
            try:
                if credentials is None:
                    bound = server.add_insecure_port(address)
                else:
                    bound = server.add_secure_port(address, credentials)
            except RuntimeError as e:
                bound, error = 0, str(e)
            else:
                error = "bind failed"
        if bound:
            sys.stderr.write(core_log.text)
            return bound
        # C-core's own log has the reason (e.g. "Address already in use"); the
        # RuntimeError only says "Failed to bind".
        reasons = sorted(set(_BIND_REASON.findall(core_log.text)))
        errors.append(f"{address}: {', '.join(reasons) or error}")
    raise BindError(f"cannot bind port {port}: " + "; ".join(errors))


_BIND_REASON = re.compile(r"Error in bind for address '[^']*': (.+?)(?=Error in bind|\)|$)", re.MULTILINE)


class _Captured:
    text = ""


@contextlib.contextmanager
def _fd2_captured():
    """Collect what is written to file descriptor 2 meanwhile.

    gRPC C-core logs a failed bind to stderr itself, in several lines; the
    contract wants one line, so those lines are caught here and summed up (or
    passed on unchanged when the bind worked). Only used before the server
    starts, when no other thread writes to stderr.
    """
    captured = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.text = tmp.read().decode("utf-8", "replace")


def listening_event(running: Running) -> str:
    """The readiness line printed on stdout once the server accepts connections."""
    return json.dumps(
        {
            "event": "listening",
            "port": running.port,
            "tls": running.tls,
            "implementation": IMPLEMENTATION,
            "library": LIBRARY,
        },
        separators=(",", ":"),
    )


def _parse_args(argv):
    parser = _flags.OneLineParser(prog="interop_server", description="gRPC interop server (Python, grpcio).")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    _flags.add_bool_flag(parser, "--use_tls", "serve TLS with the test certificate")
    parser.add_argument("--tls_cert_file", help="certificate chain (default $INTEROP_TLS_DIR/server.pem)")
    parser.add_argument("--tls_key_file", help="private key (default $INTEROP_TLS_DIR/server.key)")
    _flags.add_bool_flag(
        parser, "--require_client_cert", "with --use_tls: mutual TLS, refusing clients without a certificate"
    )
    parser.add_argument(
        "--client_ca_file",
        help="CA client certificates must chain to, for --require_client_cert (default $INTEROP_TLS_DIR/ca.pem)",
    )
    parser.add_argument("--greeting", default="Hello", help="first word of every Greeter reply")
    _flags.add_bool_flag(
        parser, "--health_check", "do not serve: check the health of the server on --port of 127.0.0.1"
    )
    parser.add_argument(
        "--tls_ca_file", help="CA trusted by --health_check --use_tls (default $INTEROP_TLS_DIR/ca.pem)"
    )
    parser.add_argument(
        "--server_host_override", default="foo.test.google.fr", help="server name checked by --health_check --use_tls"
    )
    _flags.add_bool_flag(
        parser, "--use_client_cert", "--health_check --use_tls: present a client certificate (of a mutual-TLS server)"
    )
    parser.add_argument(
        "--client_cert_file", help="certificate --use_client_cert presents (default $INTEROP_TLS_DIR/client.pem)"
    )
    parser.add_argument(
        "--client_key_file", help="private key of --client_cert_file (default $INTEROP_TLS_DIR/client.key)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"argument --port: {args.port} is not a port number")
    if args.health_check and args.port == 0:
        parser.error("--health_check needs --port of the running server")
    return args


HEALTH_CHECK_DEADLINE_S = 2.0
"""Bound on a whole --health_check (connect, TLS handshake and call). Docker runs
the check every couple of seconds; a server that cannot answer within this is
reported unhealthy rather than left to pile up checks."""


def check_health(
    port: int, tls_ca: bytes | None = None, server_name: str = "", client_cert: ClientCert | None = None
) -> tuple[bool, str]:
    """Ask grpc.health.v1.Health/Check for the overall status (service "") of the
    server on 127.0.0.1:port, with grpcio-health-checking's stub; with `tls_ca`
    over TLS, presenting `client_cert` when given (a mutual-TLS server).

    Returns (serving, one line: the status name, or why no status came back)."""
    target = f"127.0.0.1:{port}"
    if tls_ca is None:
        channel = grpc.insecure_channel(target)
    else:
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        channel = grpc.secure_channel(target, tls_credentials(tls_ca, client_cert), options=options)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_CHECK_DEADLINE_S
            )
        except grpc.RpcError as e:
            # The code as Go and Rust print it (Unavailable, DeadlineExceeded), so
            # the three servers' checks say the same thing.
            code = "".join(word.capitalize() for word in e.code().name.split("_"))
            details = (e.details() or "").replace("\n", " ")
            return False, f"{code}: {details}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, name


def _health_check_main(args) -> int:
    """--health_check: one line on stdout; 0 only for SERVING, else 1 (a Docker HEALTHCHECK's contract)."""
    try:
        tls_ca = None
        client_cert = None
        if args.use_tls:
            tls_ca = _flags.read_file(_flags.tls_file(args.tls_ca_file, "ca.pem"), "TLS CA file")
            if args.use_client_cert:
                client_cert = read_client_cert(args.client_cert_file, args.client_key_file)
    except _flags.UsageError as e:
        print(e, flush=True)
        return 1
    serving, line = check_health(args.port, tls_ca, args.server_host_override, client_cert)
    print(line, flush=True)
    return 0 if serving else 1


def main(argv=None) -> int:
    """Run the server until SIGTERM or SIGINT (or, with --health_check, check a
    running one); returns the exit status."""
    args = _parse_args(argv)
    _flags.setup_logging()
    if args.health_check:
        return _health_check_main(args)
    try:
        tls_cert_key = None
        client_ca = None
        if args.use_tls:
            cert = _flags.read_file(_flags.tls_file(args.tls_cert_file, "server.pem"), "TLS certificate")
            key = _flags.read_file(_flags.tls_file(args.tls_key_file, "server.key"), "TLS key")
            tls_cert_key = (cert, key)
            if args.require_client_cert:
                client_ca = _flags.read_file(_flags.tls_file(args.client_ca_file, "ca.pem"), "client CA file")
        elif args.require_client_cert:
            log.warning("--require_client_cert without --use_tls: serving plaintext, no client certificate asked")
        # Handlers go in before the readiness line, so a SIGTERM sent right after
        # it is never lost to Python's default handlers.
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        running = start_server(args.port, args.greeting, tls_cert_key, client_ca)
    except (_flags.UsageError, BindError) as e:
        print(f"interop_server: error: {e}", file=sys.stderr)
        return _flags.USAGE_EXIT

    print(listening_event(running), flush=True)
    log.info(
        "listening on port %d (tls=%s, client certificates required=%s, %s)",
        running.port,
        running.tls,
        client_ca is not None,
        LIBRARY,
    )
    stop.wait()
    log.info("stopping (grace %.1fs)", STOP_GRACE_S)
    running.stop()
    return 0
