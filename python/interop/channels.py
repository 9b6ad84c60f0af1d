"""Client channels: plaintext or TLS, each with connections of its own.

Shared by the client's command line (its channel, channel_soak's channel per
iteration) and by the cases that make channels of their own (http2_negative,
wire, tls), so that every channel of the client is made one way; the load
mode (interop/load.py) makes grpc.aio channels the same way (make_aio_channel).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from interop import _flags

LOCAL_SUBCHANNEL_POOL = ("grpc.use_local_subchannel_pool", 1)
"""Channel option: the channel's subchannels (connections) are its own (see make_channel)."""


@dataclass(frozen=True)
class ClientCert:
    """A certificate chain and its private key, both PEM, that a client presents (mutual TLS)."""

    chain: bytes
    key: bytes


def read_client_cert(
    cert_file: str | None, key_file: str | None, cert_name: str = "client.pem", key_name: str = "client.key"
) -> ClientCert:
    """The certificate of `cert_file` and `key_file`, else of `$INTEROP_TLS_DIR/<cert_name>`
    and `<key_name>`; a UsageError names a file that cannot be read."""
    return ClientCert(
        chain=_flags.read_file(_flags.tls_file(cert_file, cert_name), "client certificate"),
        key=_flags.read_file(_flags.tls_file(key_file, key_name), "client key"),
    )


@dataclass(frozen=True)
class TlsSettings:
    """How a client channel does TLS: the CA it trusts (None: the system's
    roots), the certificate it presents (None: none) and the name it verifies
    the server as ("": the host it connects to)."""

    ca: bytes | None = None
    client_cert: ClientCert | None = None
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        return tls_credentials(self.ca, self.client_cert)


def tls_credentials(ca: bytes | None = None, client_cert: ClientCert | None = None) -> grpc.ChannelCredentials:
    """TLS credentials trusting only the CA `ca` (--use_test_ca), or, when None,
    the system's roots: grpcio's default roots, which are the file named by
    GRPC_DEFAULT_SSL_ROOTS_FILE_PATH when set, else the roots bundled with grpcio.
    With `client_cert` the channel presents that certificate (--use_client_cert)."""
    if client_cert is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=client_cert.key, certificate_chain=client_cert.chain
    )


def make_channel(
    host: str, port: int, credentials: grpc.ChannelCredentials | None = None, host_override: str = ""
) -> grpc.Channel:
    """One channel to host:port, plaintext unless `credentials` are given. With
    TLS the server is verified (and SNI sent) as `host_override`, or as `host`
    when that is empty (no ssl_target_name_override then).

    Each channel gets connections of its own: grpcio (C-core) otherwise keeps
    subchannels in a process-wide pool, so a channel made just after another
    one to the same target was closed can reuse its connection, and
    channel_soak would not make a new connection per iteration (nor would each
    case against the bad server, or each tls case, start on a connection of
    its own)."""
    target, options = _target_and_options(host, port, credentials, host_override)
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


def make_aio_channel(
    host: str, port: int, credentials: grpc.ChannelCredentials | None = None, host_override: str = ""
) -> grpc.aio.Channel:
    """The asyncio (grpc.aio) twin of make_channel, for the load mode: the same
    target, TLS and name override, and likewise a connection of its own
    (grpcio would otherwise let aio channels with equal arguments share one
    subchannel, so --load_connections channels would be one connection).
    Call it with an event loop running: the channel belongs to that loop."""
    target, options = _target_and_options(host, port, credentials, host_override)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)


def _target_and_options(
    host: str, port: int, credentials: grpc.ChannelCredentials | None, host_override: str
) -> tuple[str, list[tuple[str, str | int]]]:
    """The target of host:port (an IPv6 address in brackets) and the channel
    options of make_channel and make_aio_channel."""
    target = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    options: list[tuple[str, str | int]] = [LOCAL_SUBCHANNEL_POOL]
    if credentials is not None and host_override:
        options.append(("grpc.ssl_target_name_override", host_override))
    return target, options


def channel_factory(
    host: str, port: int, credentials: grpc.ChannelCredentials | None = None, host_override: str = ""
) -> Callable[[], grpc.Channel]:
    """Makes channels like make_channel, each call a new one: the client's
    channel, and channel_soak's channel per iteration, all alike."""
    return functools.partial(make_channel, host, port, credentials, host_override)


def tls_channel(host: str, port: int, settings: TlsSettings) -> grpc.Channel:
    """A TLS channel to host:port as `settings` say."""
    return make_channel(host, port, settings.credentials(), settings.server_name)
