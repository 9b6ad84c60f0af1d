"""Shared fixtures: an in-process server on port 0 and a channel to it."""

import os

import grpc
import pytest

from interop import channels, server

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(PYTHON_DIR)
TLS_DIR = os.path.join(REPO_ROOT, "testdata", "tls")


@pytest.fixture(scope="module")
def running_server():
    running = server.start_server(port=0)
    yield running
    running.stop(grace=0.5)


@pytest.fixture(scope="module")
def channel(running_server) -> grpc.Channel:
    ch = channels.make_channel("localhost", running_server.port)
    yield ch
    ch.close()


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
