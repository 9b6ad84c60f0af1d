"""The interop client command line (implementations/CONTRACT.md): one channel,
the chosen cases in order, one JSON result line per case on stdout."""

import json
import logging
import sys
from collections.abc import Callable, Iterable
from typing import IO

import grpc

from interop import _flags
from interop.cases import CASES, Context, run_case

log = logging.getLogger("interop.client")

EXIT_OK = 0
EXIT_FAILED = 1


def parse_cases(text: str) -> list[str]:
    """`all`, one case name or a comma-separated list; raises UsageError on unknown names."""
    names = []
    for token in (part.strip() for part in text.split(",")):
        if token == "all":
            names.extend(CASES)
        elif token:
            names.append(token)
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise _flags.UsageError(f"unknown test case(s): {', '.join(unknown)} (known: all, {', '.join(CASES)})")
    if not names:
        raise _flags.UsageError("--test_case names no case")
    return names


def make_channel(host: str, port: int, tls_ca: bytes | None = None, host_override: str = "") -> grpc.Channel:
    """One channel to host:port; with `tls_ca`, TLS trusting only that CA and
    verifying the server as `host_override`."""
    target = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    if tls_ca is None:
        return grpc.insecure_channel(target)
    options = [("grpc.ssl_target_name_override", host_override)] if host_override else []
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=tls_ca), options=options)


def run(channel: grpc.Channel, names: Iterable[str], emit: Callable[[dict], None]) -> int:
    """Run the cases in order, emitting each result as soon as it is known; returns the exit status."""
    ctx = Context(channel)
    failed = False
    for name in names:
        result = run_case(ctx, name)
        failed |= result["outcome"] == "failed"
        emit(result)
    return EXIT_FAILED if failed else EXIT_OK


def event_line(event: dict) -> str:
    """One result (or done) event as its JSON line, without the newline."""
    return json.dumps(event, separators=(",", ":"))


def print_event(event: dict) -> None:
    """Print one result line on stdout and flush it at once."""
    print(event_line(event), flush=True)


class ResultFile:
    """--result_file: every result line also goes to a file (for containers whose
    image has no shell to redirect stdout), then `{"event":"done","cases":N}`."""

    def __init__(self, path: str):
        try:
            # Line-buffered text: each line reaches the file as soon as it is written.
            self._file: IO[str] = open(path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed in done())
        except OSError as e:
            raise _flags.UsageError(f"cannot create result file {path}: {e.strerror or e}") from None
        self._count = 0

    def emit(self, event: dict) -> None:
        """Write one result line to stdout and to the file, each flushed at once."""
        print_event(event)
        self._file.write(event_line(event) + "\n")
        self._file.flush()
        self._count += 1

    def done(self) -> None:
        """Append the done line and close the file."""
        self._file.write(event_line({"event": "done", "cases": self._count}) + "\n")
        self._file.close()


def _parse_args(argv):
    parser = _flags.OneLineParser(prog="interop_client", description="gRPC interop client (Python, grpcio).")
    parser.add_argument("--server_host", default="localhost", help="host to connect to")
    parser.add_argument("--server_port", type=int, required=True, help="port to connect to")
    parser.add_argument("--test_case", default="all", help="a case name, a comma-separated list, or all")
    _flags.add_bool_flag(parser, "--use_tls", "connect with TLS, trusting only the test CA")
    parser.add_argument(
        "--server_host_override", default="foo.test.google.fr", help="name for TLS SNI and certificate checks"
    )
    parser.add_argument("--tls_ca_file", help="CA certificate for --use_tls (default $INTEROP_TLS_DIR/ca.pem)")
    parser.add_argument(
        "--result_file",
        help='also write every result line to this file (created or truncated), then {"event":"done","cases":N}',
    )
    args = parser.parse_args(argv)
    if not 0 < args.server_port <= 65535:
        parser.error(f"argument --server_port: {args.server_port} is not a port number")
    return args


def main(argv=None) -> int:
    """Run the client; returns the exit status (0 no case failed, 1 some failed, 2 bad usage or setup)."""
    args = _parse_args(argv)
    _flags.setup_logging()
    try:
        names = parse_cases(args.test_case)
        tls_ca = None
        if args.use_tls:
            tls_ca = _flags.read_file(_flags.tls_file(args.tls_ca_file, "ca.pem"), "TLS CA file")
        # Last, so a usage error above leaves an existing file alone.
        result_file = ResultFile(args.result_file) if args.result_file else None
    except _flags.UsageError as e:
        print(f"interop_client: error: {e}", file=sys.stderr)
        return _flags.USAGE_EXIT

    log.debug("running %d case(s) against %s:%d (tls=%s)", len(names), args.server_host, args.server_port, args.use_tls)
    channel = make_channel(args.server_host, args.server_port, tls_ca, args.server_host_override)
    try:
        status = run(channel, names, result_file.emit if result_file else print_event)
    finally:
        channel.close()
    if result_file:
        result_file.done()
    return status
