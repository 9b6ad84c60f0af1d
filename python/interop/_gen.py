"""Makes the generated code in python/gen importable, next to grpcio's `grpc`.

Why this module exists: the official interop protos are in the proto package
`grpc.testing`, so protoc writes gen/grpc/testing/*_pb2*.py, and the generated
code itself imports `from grpc.testing import messages_pb2`. But `grpc` is
grpcio's package. A regular package's submodules are looked up only in its
`__path__` (a plain list, see the import system's "package __path__" rules), so
appending gen/grpc to `grpc.__path__` lets `grpc.testing` resolve to gen/grpc/testing
while `grpc` itself stays grpcio. No proto is renamed and no generated file is
edited. grpcio ships no `grpc/testing` of its own; if it ever does, its copy
would win, and the check at the bottom says so instead of failing obscurely.

gen/ itself goes on sys.path for the `helloworld` package. Both are namespace
packages (protoc writes no __init__.py), which a regular package of the same
name elsewhere on sys.path would beat: `grpc` therefore always stays grpcio.

Import the generated modules from here, never directly.
"""

import os
import sys

import grpc

GEN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gen")
_GRPC_GEN_DIR = os.path.join(GEN_DIR, "grpc")

if GEN_DIR not in sys.path:
    sys.path.insert(0, GEN_DIR)
if _GRPC_GEN_DIR not in grpc.__path__:
    grpc.__path__.append(_GRPC_GEN_DIR)

from grpc.testing import empty_pb2, messages_pb2, test_pb2, test_pb2_grpc  # noqa: E402
from helloworld import helloworld_pb2, helloworld_pb2_grpc  # noqa: E402

if not os.path.abspath(test_pb2_grpc.__file__).startswith(_GRPC_GEN_DIR + os.sep):
    raise ImportError(
        f"grpc.testing was imported from {test_pb2_grpc.__file__}, not from {_GRPC_GEN_DIR}: "
        "an installed package now provides grpc.testing; see python/interop/_gen.py"
    )

__all__ = [
    "GEN_DIR",
    "empty_pb2",
    "helloworld_pb2",
    "helloworld_pb2_grpc",
    "messages_pb2",
    "test_pb2",
    "test_pb2_grpc",
]
