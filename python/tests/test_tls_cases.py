"""Mutual TLS: the server's --require_client_cert, the client's --use_client_cert,
and the tls cases against real grpcio servers with the project's test files."""

import json
import os
import subprocess
import sys
import types
from dataclasses import replace

import grpc
import pytest
from conftest import PYTHON_DIR, TLS_DIR, read

from interop import cases, channels, client, server

SERVER = os.path.join(PYTHON_DIR, "interop_server.py")
CLIENT = os.path.join(PYTHON_DIR, "interop_client.py")

TLS_CASES = ["mtls_accepted", "tls_untrusted_server", "tls_wrong_name", "mtls_no_client_cert", "mtls_other_ca_client"]
SERVER_NAME = "foo.test.google.fr"

# What the runner gives a client of the tls cases (CONTRACT.md, "TLS refusals").
CLIENT_TLS_FLAGS = ["--use_tls", "--use_test_ca", "--server_host_override", SERVER_NAME, "--use_client_cert"]


def _tls_file(name: str) -> bytes:
    return read(os.path.join(TLS_DIR, name))


def _server_cert_key() -> tuple[bytes, bytes]:
    return _tls_file("server.pem"), _tls_file("server.key")


@pytest.fixture(scope="module")
def mtls_server():
    """A server requiring a client certificate signed by the test CA."""
    running = server.start_server(port=0, tls_cert_key=_server_cert_key(), client_ca=_tls_file("ca.pem"))
    yield running
    running.stop(grace=0.5)


@pytest.fixture(scope="module")
def tls_server():
    """A TLS server that asks for no client certificate: it refuses no one."""
    running = server.start_server(port=0, tls_cert_key=_server_cert_key())
    yield running
    running.stop(grace=0.5)


def _tls_cases(monkeypatch, port: int, *flags: str) -> cases.TlsCases:
    """The TlsCases the client's main makes of these flags and $INTEROP_TLS_DIR."""
    monkeypatch.setenv("INTEROP_TLS_DIR", TLS_DIR)
    args = client._parse_args(["--server_port", str(port), "--server_host", "127.0.0.1", *flags])
    return client.tls_cases(args)


def _run(tls: cases.TlsCases, names: list[str]) -> dict[str, dict]:
    results = []
    # The client's own channel is not used by the tls cases: each makes its own.
    channel = channels.make_channel("127.0.0.1", tls.port)
    try:
        client.run(channel, names, results.append, tls=tls)
    finally:
        channel.close()
    return {result["case"]: result for result in results}


def test_flags_make_the_settings(monkeypatch):
    tls = _tls_cases(monkeypatch, 5, *CLIENT_TLS_FLAGS)
    assert (tls.host, tls.port) == ("127.0.0.1", 5)
    assert tls.settings == channels.TlsSettings(
        ca=_tls_file("ca.pem"),
        client_cert=channels.ClientCert(_tls_file("client.pem"), _tls_file("client.key")),
        server_name=SERVER_NAME,
    )
    assert tls.other_ca == _tls_file("other-ca.pem")
    assert tls.other_client == channels.ClientCert(_tls_file("other-client.pem"), _tls_file("other-client.key"))
    # The tls cases use TLS, the CA of --ca_file and the certificate of the file
    # flags whatever --use_tls, --use_test_ca and --use_client_cert say.
    for flags in (["--server_host_override", SERVER_NAME], ["--use_tls=false", *CLIENT_TLS_FLAGS]):
        assert _tls_cases(monkeypatch, 5, *flags) == tls
    # The file flags are the files read.
    mine = _tls_cases(
        monkeypatch,
        5,
        "--ca_file",
        os.path.join(TLS_DIR, "other-ca.pem"),
        "--client_cert_file",
        os.path.join(TLS_DIR, "other-client.pem"),
        "--client_key_file",
        os.path.join(TLS_DIR, "other-client.key"),
    )
    assert mine.settings == channels.TlsSettings(ca=tls.other_ca, client_cert=tls.other_client)


def test_every_tls_case_passes_against_a_mutual_tls_server(monkeypatch, mtls_server):
    results = _run(_tls_cases(monkeypatch, mtls_server.port, *CLIENT_TLS_FLAGS), TLS_CASES)
    assert list(results) == TLS_CASES
    for name, result in results.items():
        assert (result["outcome"], result["message"]) == ("passed", ""), result
        assert result["checks"] == {cases.CASES[name].checks[0]: "passed"}, result
        assert result["not_checked"] == {}


def test_refusals_fail_against_a_server_that_does_not_refuse(monkeypatch, tls_server):
    """The server asks for no certificate: presenting none, or one of the other
    CA, is accepted, and those two cases fail saying so."""
    results = _run(_tls_cases(monkeypatch, tls_server.port, *CLIENT_TLS_FLAGS), TLS_CASES)
    assert results["mtls_no_client_cert"]["outcome"] == "failed"
    assert results["mtls_no_client_cert"]["checks"] == {"status_code": "failed"}
    assert results["mtls_no_client_cert"]["message"] == (
        "EmptyCall over TLS presenting no client certificate status = OK (0), want UNAVAILABLE (14)"
    )
    assert results["mtls_other_ca_client"]["message"] == (
        "EmptyCall over TLS presenting other-client.pem (signed by other-ca.pem) status = OK (0), want UNAVAILABLE (14)"
    )
    # The client's own refusals do not depend on the server.
    for name in ("mtls_accepted", "tls_untrusted_server", "tls_wrong_name"):
        assert results[name]["outcome"] == "passed", results[name]


def test_client_refusals_fail_when_the_client_would_accept(monkeypatch, mtls_server):
    """tls_untrusted_server and tls_wrong_name fail when their channel is, after
    all, one the server's certificate satisfies."""
    tls = _tls_cases(monkeypatch, mtls_server.port, *CLIENT_TLS_FLAGS)
    results = _run(replace(tls, other_ca=tls.settings.ca), ["tls_untrusted_server"])
    assert results["tls_untrusted_server"]["message"] == (
        "EmptyCall over TLS trusting only other-ca.pem status = OK (0), want UNAVAILABLE (14)"
    )
    monkeypatch.setattr(cases, "WRONG_NAME", SERVER_NAME)
    results = _run(tls, ["tls_wrong_name"])
    assert results["tls_wrong_name"]["message"] == (
        f"EmptyCall over TLS verifying the server as {SERVER_NAME} status = OK (0), want UNAVAILABLE (14)"
    )


def test_mtls_accepted_fails_when_the_server_refuses(monkeypatch, mtls_server):
    """A client certificate the server does not accept (--client_cert_file of the
    other CA): mtls_accepted reports the refusal as grpcio returned it, code and details."""
    flags = ["--server_host_override", SERVER_NAME, "--client_cert_file", os.path.join(TLS_DIR, "other-client.pem")]
    flags += ["--client_key_file", os.path.join(TLS_DIR, "other-client.key")]
    results = _run(_tls_cases(monkeypatch, mtls_server.port, *flags), ["mtls_accepted", "mtls_no_client_cert"])
    accepted = results["mtls_accepted"]
    assert accepted["outcome"] == "failed"
    assert accepted["checks"] == {"status": "failed"}
    assert accepted["message"].startswith('EmptyCall over mutual TLS status = UNAVAILABLE (14) "'), accepted
    assert accepted["message"].endswith('", want OK (0)'), accepted
    assert results["mtls_no_client_cert"]["outcome"] == "passed"


def test_refusals_are_unavailable_with_grpcio_s_details(monkeypatch, mtls_server):
    """A refusal's status is UNAVAILABLE with grpcio's own message: checked by
    making the refusal fail (wanting OK) and reading what came back."""
    tls = _tls_cases(monkeypatch, mtls_server.port, *CLIENT_TLS_FLAGS)
    checks = cases.Checks()
    cases._tls_empty_call(
        checks, "status", "EmptyCall", tls, replace(tls.settings, ca=tls.other_ca), grpc.StatusCode.OK
    )
    (message,) = checks.failures
    assert message.startswith('EmptyCall status = UNAVAILABLE (14) "'), message
    assert "CERTIFICATE_VERIFY_FAILED" in message or "handshake" in message.lower(), message


def test_tls_cases_without_their_settings_fail_saying_so():
    result = cases.run_case(types.SimpleNamespace(tls=None), "mtls_accepted")
    assert result["outcome"] == "failed"
    assert result["checks"] == {"status": "failed"}
    assert result["message"] == (
        "unexpected RuntimeError: the tls cases need the client's TLS settings and the other CA's files (Context.tls)"
    )


# --- the command lines ------------------------------------------------------------------


def _start_server(*args):
    env = dict(os.environ, INTEROP_TLS_DIR=TLS_DIR)
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # Readiness is the listening line; readline() returns at once on an early exit too.
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"server exited without a listening line: {proc.stderr.read()}")
    return proc, json.loads(line)["port"]


def _stop(proc) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def mtls_server_port():
    proc, port = _start_server("--use_tls", "--require_client_cert")
    yield port
    assert _stop(proc) == 0


def _client(*args, tls_dir=TLS_DIR):
    env = dict(os.environ, INTEROP_TLS_DIR=tls_dir)
    return subprocess.run([sys.executable, CLIENT, *args], capture_output=True, text=True, env=env, timeout=60)


def _outcomes(done) -> dict[str, str]:
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0] == {"event": "ready"} and lines[-1] == {"event": "done", "cases": len(lines) - 2}, done.stdout
    return {line["case"]: line["outcome"] for line in lines[1:-1]}


def test_command_lines_of_mutual_tls(mtls_server_port):
    port = str(mtls_server_port)
    done = _client("--server_port", port, *CLIENT_TLS_FLAGS, "--test_case", ",".join([*TLS_CASES, "large_unary"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _outcomes(done) == dict.fromkeys([*TLS_CASES, "large_unary"], "passed")
    # Without a client certificate the server refuses the client's channel.
    flags = [flag for flag in CLIENT_TLS_FLAGS if flag != "--use_client_cert"]
    done = _client("--server_port", port, *flags, "--use_client_cert=false", "--test_case", "large_unary")
    assert (done.returncode, _outcomes(done)) == (1, {"large_unary": "failed"}), done.stdout
    # A certificate of the other CA is refused too.
    other = ["--client_cert_file", os.path.join(TLS_DIR, "other-client.pem")]
    other += ["--client_key_file", os.path.join(TLS_DIR, "other-client.key")]
    done = _client("--server_port", port, *CLIENT_TLS_FLAGS, *other, "--test_case", "large_unary")
    assert (done.returncode, _outcomes(done)) == (1, {"large_unary": "failed"}), done.stdout


def test_tls_cases_use_tls_whatever_the_tls_flags_say(mtls_server_port):
    port = str(mtls_server_port)
    done = _client("--server_port", port, "--server_host_override", SERVER_NAME, "--test_case", ",".join(TLS_CASES))
    assert (done.returncode, _outcomes(done)) == (0, dict.fromkeys(TLS_CASES, "passed")), done.stdout + done.stderr
    # The client's own channel is as the flags say: plaintext here, which the server refuses.
    done = _client("--server_port", port, "--test_case", "mtls_accepted,empty_unary")
    assert _outcomes(done) == {"mtls_accepted": "passed", "empty_unary": "failed"}, done.stdout


def test_client_ca_file_is_the_ca_client_certificates_must_chain_to():
    proc, port = _start_server(
        "--use_tls", "--require_client_cert", "--client_ca_file", os.path.join(TLS_DIR, "other-ca.pem")
    )
    try:
        other = ["--client_cert_file", os.path.join(TLS_DIR, "other-client.pem")]
        other += ["--client_key_file", os.path.join(TLS_DIR, "other-client.key")]
        done = _client("--server_port", str(port), *CLIENT_TLS_FLAGS, *other, "--test_case", "empty_unary")
        assert _outcomes(done) == {"empty_unary": "passed"}, done.stdout
        done = _client("--server_port", str(port), *CLIENT_TLS_FLAGS, "--test_case", "empty_unary")
        assert _outcomes(done) == {"empty_unary": "failed"}, done.stdout
    finally:
        assert _stop(proc) == 0


def test_require_client_cert_is_a_bool_flag():
    assert server._parse_args([]).require_client_cert is False
    assert server._parse_args(["--require_client_cert"]).require_client_cert is True
    assert server._parse_args(["--require_client_cert=false"]).require_client_cert is False
    assert client._parse_args(["--server_port", "1"]).use_client_cert is False
    assert client._parse_args(["--server_port", "1", "--use_client_cert=true"]).use_client_cert is True


def _health_check(port, *args):
    env = dict(os.environ, INTEROP_TLS_DIR=TLS_DIR)
    # The check's own deadline is 2 s; 30 s only catches a check that hangs.
    return subprocess.run(
        [sys.executable, SERVER, "--health_check", "--port", str(port), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_health_check_of_a_mutual_tls_server(mtls_server_port):
    done = _health_check(mtls_server_port, "--use_tls", "--use_client_cert")
    assert (done.returncode, done.stdout) == (0, "SERVING\n"), done.stderr
    done = _health_check(mtls_server_port, "--use_tls")
    assert done.returncode == 1
    assert done.stdout.startswith("Unavailable: ") and done.stdout.count("\n") == 1, done.stdout
    done = _health_check(mtls_server_port, "--use_tls", "--use_client_cert", "--client_key_file", "/nonexistent/c.key")
    assert (done.returncode, done.stdout.count("\n")) == (1, 1) and "c.key" in done.stdout, done.stdout


def _assert_usage_error(done, fragment):
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and fragment in done.stderr, done.stderr


def test_unreadable_tls_files_are_usage_errors(tmp_path):
    _assert_usage_error(
        _client("--server_port", "1", "--use_tls", "--use_client_cert", "--client_cert_file", "/nonexistent/c.pem"),
        "c.pem",
    )
    # The tls cases need their files of $INTEROP_TLS_DIR: checked before any case runs.
    _assert_usage_error(_client("--server_port", "1", "--test_case", "tls_wrong_name", tls_dir=str(tmp_path)), "ca.pem")
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_bytes(_tls_file(name))
    _assert_usage_error(
        _client("--server_port", "1", "--test_case", "tls_wrong_name", tls_dir=str(tmp_path)), "other-ca.pem"
    )
    # Other cases do not.
    done = _client("--server_port", "1", "--test_case", "empty_unary", tls_dir=str(tmp_path))
    assert done.returncode == 1, done.stderr
    env = dict(os.environ, INTEROP_TLS_DIR=TLS_DIR)
    done = subprocess.run(
        [sys.executable, SERVER, "--use_tls", "--require_client_cert", "--client_ca_file", "/nonexistent/ca.pem"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    _assert_usage_error(done, "/nonexistent/ca.pem")
