"""The interop client command line (implementations/CONTRACT.md): one channel,
the chosen cases in order (those of the groups http2_negative, wire and tls make
channels of their own); on stdout a ready line, one JSON result line per case,
then a done line. With --load it plays a load instead (interop/load.py): a ready
line, then one load line."""

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterable
from typing import IO

import grpc

from interop import _flags, load
from interop.cases import BAD_INPUT_CASES, CASES, Context, SoakOptions, TlsCases, default_cases, run_case
from interop.channels import TlsSettings, channel_factory, read_client_cert

log = logging.getLogger("interop.client")

EXIT_OK = 0
EXIT_FAILED = 1


def parse_cases(text: str) -> list[str]:
    """`all` (the cases of the groups greeter, interop and soak), one case name
    or a comma-separated list; raises UsageError on unknown names, and on the
    bad_input cases, which the bad client plays, not a client."""
    names = []
    for token in (part.strip() for part in text.split(",")):
        if token == "all":
            names.extend(default_cases())
        elif token:
            names.append(token)
    server_side = [name for name in names if name in BAD_INPUT_CASES]
    if server_side:
        raise _flags.UsageError(
            f"{', '.join(server_side)}: bad_input case(s), played by the bad client of fixtures/ against servers, "
            "not by a client"
        )
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise _flags.UsageError(f"unknown test case(s): {', '.join(unknown)} (known: all, {', '.join(CASES)})")
    if not names:
        raise _flags.UsageError("--test_case names no case")
    return names


def run(
    channel: grpc.Channel,
    names: Iterable[str],
    emit: Callable[[dict], None],
    new_channel: Callable[[], grpc.Channel] | None = None,
    soak: SoakOptions | None = None,
    tls: TlsCases | None = None,
) -> int:
    """Run the cases in order, emitting each result as soon as it is known; returns the exit status.
    `new_channel` makes a channel like `channel` (channel_soak, the cases against
    the bad server); `soak` the soak flags; `tls` what the tls cases need."""
    ctx = Context(channel, new_channel, soak or SoakOptions(), tls)
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


SOAK_FLAGS = (
    ("--soak_iterations", 10, "rpc_soak, channel_soak: how many RPCs"),
    ("--soak_max_failures", 0, "how many of them may fail"),
    ("--soak_per_iteration_max_acceptable_latency_ms", 1000, "an RPC slower than this fails (also its deadline)"),
    ("--soak_overall_timeout_seconds", 10, "no iteration starts after this"),
    ("--soak_min_time_ms_between_rpcs", 0, "least time between the starts of a worker's iterations"),
    ("--soak_num_threads", 1, "workers, each running soak_iterations / soak_num_threads in sequence"),
)
"""The soak flags of CONTRACT.md (Client): flag, default, help. Each is an
integer; `--soak_<field>` is the SoakOptions field of the same name."""


LOAD_FLAGS = (
    ("--load_concurrency", 50, "--load: workers, each with one call in flight (unary) or one stream (ping_pong)"),
    ("--load_connections", 1, "--load: channels, each its own connection; worker i uses channel i mod N"),
    ("--load_warmup_ms", 1000, "--load: load before the measured window, not counted"),
    ("--load_duration_ms", 5000, "--load: the measured window"),
    ("--load_payload_bytes", 100, "--load: the request's and the response's payload size"),
)
"""The load flags of CONTRACT.md (Load mode): flag, default, help. Each is an
integer; `--load_<field>` is the LoadOptions field of the same name."""


def _parse_args(argv):
    parser = _flags.OneLineParser(prog="interop_client", description="gRPC interop client (Python, grpcio).")
    parser.add_argument("--server_host", default="localhost", help="host to connect to")
    parser.add_argument("--server_port", type=int, required=True, help="port to connect to")
    # None (read as all) tells a --test_case given from none, which --load forbids.
    parser.add_argument("--test_case", help="a case name, a comma-separated list, or all (default all)")
    _flags.add_bool_flag(parser, "--use_tls", "connect with TLS")
    _flags.add_bool_flag(
        parser, "--use_test_ca", "with --use_tls: trust only the CA of --ca_file instead of the system's roots"
    )
    parser.add_argument("--ca_file", help="the CA --use_test_ca trusts (default $INTEROP_TLS_DIR/ca.pem)")
    parser.add_argument(
        "--server_host_override",
        default="",
        help="name for TLS SNI and certificate checks (default: the value of --server_host)",
    )
    _flags.add_bool_flag(parser, "--use_client_cert", "with --use_tls: present a client certificate (mutual TLS)")
    parser.add_argument(
        "--client_cert_file", help="certificate chain --use_client_cert presents (default $INTEROP_TLS_DIR/client.pem)"
    )
    parser.add_argument(
        "--client_key_file", help="private key of --client_cert_file (default $INTEROP_TLS_DIR/client.key)"
    )
    for flag, default, help_text in SOAK_FLAGS:
        parser.add_argument(flag, type=int, default=default, help=f"{help_text} (default {default})")
    parser.add_argument(
        "--result_file",
        help='also write every result line to this file (created or truncated), then {"event":"done","cases":N}',
    )
    parser.add_argument("--load", help=f"play a load instead of cases: {' or '.join(load.LOADS)}")
    for flag, default, help_text in LOAD_FLAGS:
        parser.add_argument(flag, type=int, default=default, help=f"{help_text} (default {default})")
    args = parser.parse_args(argv)
    if not 0 < args.server_port <= 65535:
        parser.error(f"argument --server_port: {args.server_port} is not a port number")
    for flag, _, _ in SOAK_FLAGS:
        value = getattr(args, flag[2:])
        positive = flag in ("--soak_iterations", "--soak_num_threads")
        if value < 0 or (positive and value == 0):
            parser.error(f"argument {flag}: {value}, want a {'positive' if positive else 'non-negative'} number")
    if args.soak_iterations % args.soak_num_threads:
        parser.error(
            f"argument --soak_iterations: {args.soak_iterations} is not divisible by "
            f"--soak_num_threads {args.soak_num_threads}"
        )
    if args.load is not None:
        if args.test_case is not None:
            parser.error("argument --load: not allowed with --test_case (a load is played instead of cases)")
        try:
            load_options(args).validate()
        except _flags.UsageError as e:
            parser.error(str(e))
    if args.test_case is None:
        args.test_case = "all"
    return args


def load_options(args) -> load.LoadOptions:
    """The LoadOptions of parsed flags (with --load)."""
    fields = {flag[len("--load_") :]: getattr(args, flag[2:]) for flag, _, _ in LOAD_FLAGS}
    return load.LoadOptions(load=args.load, **fields)


def soak_options(args) -> SoakOptions:
    """The SoakOptions of parsed flags."""
    return SoakOptions(**{field: getattr(args, "soak_" + field) for field in SoakOptions.__dataclass_fields__})


def server_name(args) -> str:
    """The name TLS verifies the server as: --server_host_override, else --server_host."""
    return args.server_host_override or args.server_host


def tls_settings(args) -> TlsSettings:
    """The TLS of the flags, with the files they name read (UsageError when one cannot be):
    the CA of --ca_file with --use_test_ca, the certificate of --client_cert_file
    and --client_key_file with --use_client_cert, and --server_host_override."""
    ca = None
    if args.use_test_ca:
        ca = _flags.read_file(_flags.tls_file(args.ca_file, "ca.pem"), "CA file")
    client_cert = None
    if args.use_client_cert:
        client_cert = read_client_cert(args.client_cert_file, args.client_key_file)
    return TlsSettings(ca=ca, client_cert=client_cert, server_name=args.server_host_override)


def tls_cases(args) -> TlsCases:
    """What the tls cases need (UsageError when a file cannot be read): the TLS
    of mtls_accepted, which these cases use whatever --use_tls, --use_test_ca and
    --use_client_cert say (the CA of --ca_file, the name of --server_host_override,
    the certificate of --client_cert_file and --client_key_file), and the second
    CA's files of $INTEROP_TLS_DIR."""
    return TlsCases(
        host=args.server_host,
        port=args.server_port,
        settings=TlsSettings(
            ca=_flags.read_file(_flags.tls_file(args.ca_file, "ca.pem"), "CA file"),
            client_cert=read_client_cert(args.client_cert_file, args.client_key_file),
            server_name=args.server_host_override,
        ),
        other_ca=_flags.read_file(_flags.tls_file(None, "other-ca.pem"), "CA file"),
        other_client=read_client_cert(None, None, "other-client.pem", "other-client.key"),
    )


def main(argv=None) -> int:
    """Run the client; returns the exit status (0 no case failed, 1 some failed, 2 bad usage or setup)."""
    args = _parse_args(argv)
    _flags.setup_logging()
    if args.load is not None:
        return run_load(args)
    try:
        names = parse_cases(args.test_case)
        credentials = tls_settings(args).credentials() if args.use_tls else None
        # The tls cases make TLS channels of their own, whatever --use_tls says.
        tls = tls_cases(args) if any(CASES[name].group == "tls" for name in names) else None
        # Last, so a usage error above leaves an existing file alone.
        output = Output(args.result_file)
    except _flags.UsageError as e:
        print(f"interop_client: error: {e}", file=sys.stderr)
        return _flags.USAGE_EXIT

    log.debug(
        "running %d case(s) against %s:%d (tls=%s, test ca=%s, client cert=%s, server name %s)",
        len(names),
        args.server_host,
        args.server_port,
        args.use_tls,
        args.use_test_ca,
        args.use_client_cert,
        server_name(args),
    )
    new_channel = channel_factory(args.server_host, args.server_port, credentials, args.server_host_override)
    channel = new_channel()
    output.ready()
    try:
        status = run(channel, names, output.result, new_channel, soak_options(args), tls)
    finally:
        channel.close()
    output.done()
    return status


def run_load(args) -> int:
    """--load: the ready line once the channels are made, then the load line; returns the exit status
    (0, or 2 when a TLS file cannot be read)."""
    try:
        credentials = tls_settings(args).credentials() if args.use_tls else None
    except _flags.UsageError as e:
        print(f"interop_client: error: {e}", file=sys.stderr)
        return _flags.USAGE_EXIT
    result = asyncio.run(
        load.run(
            load_options(args),
            args.server_host,
            args.server_port,
            credentials,
            args.server_host_override,
            on_ready=lambda: print_event({"event": "ready"}),
        )
    )
    print_event(result)
    return EXIT_OK
