"""The interop client command line (implementations/CONTRACT.md): one channel,
the chosen cases in order; on stdout a ready line, one JSON result line per case,
then a done line."""

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
    """One event (ready, result or done) as its JSON line, without the newline."""
    return json.dumps(event, separators=(",", ":"))


def print_event(event: dict) -> None:
    """Print one line on stdout and flush it at once."""
    print(event_line(event), flush=True)


class Output:
    """The client's lines (CONTRACT.md, Client), each on stdout and flushed at once:
    `{"event":"ready"}`, one result line per case, then `{"event":"done","cases":N}`.

    With --result_file the result and done lines also go to that file, byte for
    byte (for containers whose image has no shell to redirect stdout); the ready
    line does not.
    """

    def __init__(self, result_file: str | None = None):
        self._file: IO[str] | None = None
        if result_file:
            try:
                # Line-buffered text: each line reaches the file as soon as it is written.
                self._file = open(result_file, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed in done())
            except OSError as e:
                raise _flags.UsageError(f"cannot create result file {result_file}: {e.strerror or e}") from None
        self.cases = 0

    def _write(self, event: dict, to_file: bool = True) -> None:
        print_event(event)
        if to_file and self._file:
            self._file.write(event_line(event) + "\n")
            self._file.flush()

    def ready(self) -> None:
        """Flags valid, channel made: the first case comes next (stdout only)."""
        self._write({"event": "ready"}, to_file=False)

    def result(self, event: dict) -> None:
        self._write(event)
        self.cases += 1

    def done(self) -> None:
        """The done line after the last result; closes the result file."""
        self._write({"event": "done", "cases": self.cases})
        if self._file:
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
        output = Output(args.result_file)
    except _flags.UsageError as e:
        print(f"interop_client: error: {e}", file=sys.stderr)
        return _flags.USAGE_EXIT

    log.debug("running %d case(s) against %s:%d (tls=%s)", len(names), args.server_host, args.server_port, args.use_tls)
    channel = make_channel(args.server_host, args.server_port, tls_ca, args.server_host_override)
    output.ready()
    try:
        status = run(channel, names, output.result)
    finally:
        channel.close()
    output.done()
    return status
