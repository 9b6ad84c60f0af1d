"""Command-line helpers shared by the server and the client (see implementations/CONTRACT.md)."""

import argparse
import logging
import os
import sys

USAGE_EXIT = 2
"""Exit status for bad usage or setup, the same for both programs."""


class UsageError(Exception):
    """Bad flags or setup: the program prints one line on stderr and exits 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single stderr line and exit status 2.

    argparse's own error() prints the whole usage block first; the contract asks
    for one line, so scripts and the runner can show it as is.
    """

    def __init__(self, **kwargs):
        # allow_abbrev=False: `--port` must not be reachable as `--po`, as in the
        # Go and Rust programs that accept exactly the documented names.
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message}\n")


def parse_bool(text: str) -> bool:
    """Parse the value of `--flag=VALUE` for a boolean flag, like Go's flag package."""
    value = text.strip().lower()
    if value in ("true", "1", "t", "yes"):
        return True
    if value in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}, want true or false")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    """Add a boolean flag accepted as `--name`, `--name=true` and `--name=false`."""
    parser.add_argument(
        name, nargs="?", const=True, default=False, type=parse_bool, metavar="true|false", help=help_text
    )


def tls_file(explicit: str | None, name: str) -> str:
    """The TLS file to use: the flag's value, else `$INTEROP_TLS_DIR/<name>`."""
    if explicit:
        return explicit
    tls_dir = os.environ.get("INTEROP_TLS_DIR")
    if not tls_dir:
        raise UsageError(f"no {name}: INTEROP_TLS_DIR is not set and no file flag was given")
    return os.path.join(tls_dir, name)


def read_file(path: str, what: str) -> bytes:
    """Read a whole file, turning any OS error into a UsageError naming the file."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}") from None


def setup_logging() -> None:
    """Logs go to stderr only; INTEROP_LOG_LEVEL (default INFO) sets the level."""
    level = os.environ.get("INTEROP_LOG_LEVEL", "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        level = "INFO"
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
