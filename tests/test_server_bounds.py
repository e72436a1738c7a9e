"""Arguments the MCP server must refuse cheaply, and the HTTP transport's token, Host and Origin checks.

No timed assertions: "at once" is shown by what the refusal says (it names the limit, so no
resolver, parser or database ran) and by the next call being answered; waits only bound a hang.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from polling import wait_until

from db_migrate.errors import InvalidArgument, UsageError
from db_migrate.server import build_server
from db_migrate.tools.limits import ARGUMENT_LIMITS, PATH_MAX, URL_MAX, check_arguments

CLI = str(Path(sys.executable).parent / "db-migrate")
MB = 1 << 20


def _error(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content[0].text[:300]
    return json.loads(result.content[0].text)["error"]




# --- the limits themselves --------------------------------------------------------------------------


def test_limits_accept_what_fits_and_refuse_the_rest_without_echoing_it() -> None:
    check_arguments("review_migration", {"revision": "r" * PATH_MAX, "database_url": "postgresql://h/" + "d" * 100, "all_revisions": True})
    secret = "postgresql://u:Sup3rSecret@h/" + "x" * URL_MAX
    with pytest.raises(InvalidArgument) as e:
        check_arguments("review_migration", {"database_url": secret})
    info = e.value.info("mcp")
    assert info.code == "invalid-argument" and isinstance(e.value, UsageError)
    assert str(URL_MAX) in info.message and "Sup3rSecret" not in info.model_dump_json()
    assert "the database_url argument" in (info.hint or "")
    with pytest.raises(InvalidArgument, match="NUL"):
        check_arguments("test_roundtrip", {"revision": "abc\0.py"})
    with pytest.raises(InvalidArgument) as e:
        check_arguments("review_migration", {"revision" + "n" * MB: "head"})
    assert len(e.value.info("mcp").model_dump_json()) < 1000  # a huge name is not echoed either
    with pytest.raises(InvalidArgument, match="message"):
        check_arguments("generate_migration", {"message": "m" * (ARGUMENT_LIMITS["message"] + 1)})


# --- over the SDK's in-memory client ------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["revision", "database_url"])
def test_a_megabyte_argument_is_refused_at_once_and_the_next_call_is_answered(residency: Path, argument: str) -> None:
    async def go() -> tuple[Any, Any]:
        async with Client(build_server(residency)) as c:
            huge = await c.call_tool("review_migration", {argument: "postgresql://u:pw@h/" + "a" * MB})
            nxt = await c.call_tool("check_heads", {})
            return huge, nxt

    huge, nxt = anyio.run(go)
    err = _error(huge)
    assert err["code"] == "invalid-argument" and err["details"]["argument"] == argument
    assert len(huge.content[0].text) < 2000  # the value is not echoed back
    assert not nxt.is_error and nxt.structured_content["heads"] == ["f956808bc5df"]


def test_a_revision_path_the_system_cannot_look_up_is_a_usage_error(residency: Path) -> None:
    async def go() -> list[Any]:
        async with Client(build_server(residency)) as c:
            return [await c.call_tool("review_migration", {"revision": rev}) for rev in
                    ("../" * 10000, "a" * 300 + ".py", "alembic/versions/" + "b" * 300 + "/x.py")]

    dots, long_name, long_folder = anyio.run(go)
    assert _error(dots)["code"] == "invalid-argument"  # 30 000 characters: over PATH_MAX, refused before any lookup
    err = _error(long_name)
    assert err["code"] == "invalid-argument", err  # not internal-error
    assert "File name too long" in err["message"] and len(err["message"]) < 400
    # a missing folder is found missing before its over-long name is looked at: not a revision file, plainly
    assert _error(long_folder)["code"] in ("invalid-argument", "revision-not-found")


# --- a real server over stdio ---------------------------------------------------------------------------


class _Stdio:
    """``db-migrate serve`` driven line by line, as an MCP client does."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.proc = subprocess.Popen([CLI, "serve", "--project", str(root), *extra],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.send({"id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}})
        assert self.answer()["id"] == 0
        self.send({"method": "notifications/initialized"})

    def send(self, message: dict[str, Any]) -> None:
        self.proc.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def call(self, id_: int, tool: str, arguments: dict[str, Any]) -> None:
        self.send({"id": id_, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})

    def answer(self) -> dict[str, Any]:
        while True:
            message = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
            if "id" in message:  # not a notification (progress, log)
                return message

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(60)


@pytest.mark.timeout(300)
def test_a_30_megabyte_argument_does_not_stop_the_server_reading_stdin(residency: Path) -> None:
    server = _Stdio(residency)
    try:
        server.call(1, "review_migration", {"revision": "x" * (30 * MB)})
        server.call(2, "check_heads", {})
        answers = {a["id"]: a for a in (server.answer(), server.answer())}
    finally:
        server.close()
    refused = json.loads(answers[1]["result"]["content"][0]["text"])["error"]
    assert refused["code"] == "invalid-argument"
    assert answers[2]["result"]["structuredContent"]["heads"] == ["f956808bc5df"]


LOOP = "def upgrade():\n    while True:\n        pass\ndef downgrade():\n    pass\n"


@pytest.mark.timeout(300)
def test_sigterm_ends_the_server_whatever_it_is_doing(tmp_path: Path) -> None:
    from projectfactory import make_project

    root = make_project(tmp_path, [LOOP]).resolve()
    server = _Stdio(root, "--timeout", "3600")
    try:
        server.call(1, "test_roundtrip", {"database_url": "sqlite://"})  # loops until its (hour-long) timeout
        server.call(2, "review_migration", {"revision": "y" * (30 * MB)})  # and a huge argument behind it
        assert server.answer()["id"] == 2  # the refusal: the loop holds neither the event loop nor stdin
        server.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: server.proc.poll() is not None, 120), "SIGTERM did not end the server"
    finally:
        server.close()


# --- HTTP -------------------------------------------------------------------------------------------------


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DB_MIGRATE_HTTP_TOKEN"}
    return {**env, **extra}


def _post(port: int, headers: dict[str, str], *, announce: int = 0) -> int:
    """POST an initialize request; with ``announce``, only announce a body of that size (none is sent)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        all_headers = {"content-type": "application/json", "accept": "application/json, text/event-stream", **headers}
        if announce:
            conn.putrequest("POST", "/mcp", skip_host="host" in headers)
            for k, v in {**all_headers, "content-length": str(announce)}.items():
                conn.putheader(k, v)
            conn.endheaders()  # the answer must come before any body: nothing is read for it
        else:
            conn.request("POST", "/mcp", body=body, headers=all_headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _serving(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    port = int(args[args.index("--port") + 1])
    proc = subprocess.Popen([CLI, "serve", "--http", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return proc.poll() is not None

    assert wait_until(listening, 60) and proc.poll() is None, proc.stderr.read().decode() if proc.poll() is not None else "never listened"  # type: ignore[union-attr]
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def test_http_on_a_public_host_refuses_to_start_without_a_token(residency: Path, tmp_path: Path) -> None:
    base = ["--host", "0.0.0.0", "--port", str(_port()), "--project", str(residency)]
    p = subprocess.run([CLI, "serve", "--http", *base], env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "bearer token" in p.stderr and "DB_MIGRATE_HTTP_TOKEN" in p.stderr
    open_file = tmp_path / "token"
    open_file.write_text("t" * 40 + "\n")
    open_file.chmod(0o644)
    p = subprocess.run([CLI, "serve", "--http", *base, "--token-file", str(open_file)], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "readable by other users" in p.stderr
    p = subprocess.run([CLI, "serve", "--http", *base], env=_env(DB_MIGRATE_HTTP_TOKEN="short"),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "at least" in p.stderr


@pytest.mark.timeout(300)
def test_http_with_a_token_wants_it_on_every_request_and_checks_host_and_origin(residency: Path, tmp_path: Path) -> None:
    token = "tok-" + os.urandom(16).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = _port()
    proc = _serving(["--host", "0.0.0.0", "--port", str(port), "--project", str(residency), "--token-file", str(token_file),
                     "--allowed-host", "mcp.example.test"], _env())
    try:
        good = {"authorization": f"Bearer {token}"}
        assert _post(port, {}) == 401
        assert _post(port, {"authorization": f"Bearer {token}x"}) == 401
        assert _post(port, {"authorization": token}) == 401  # the scheme is part of it
        assert _post(port, good) == 200
        assert _post(port, {**good, "host": f"mcp.example.test:{port}"}) == 200  # a name the operator allowed
        assert _post(port, {**good, "host": "attacker.example"}) == 421
        assert _post(port, {**good, "origin": "http://attacker.example"}) == 403
        assert _post(port, {}, announce=30 * MB) == 401  # refused before its body is read
        assert _post(port, good, announce=30 * MB) == 413  # the SDK's body limit (4 MiB), from the declared size
        assert _post(port, good) == 200  # and the server goes on answering
    finally:
        _stop(proc)


@pytest.mark.timeout(300)
def test_http_on_loopback_refuses_a_bad_host_and_origin_without_a_token(residency: Path) -> None:
    port = _port()
    proc = _serving(["--port", str(port), "--project", str(residency)], _env())
    try:
        assert _post(port, {}) == 200
        assert _post(port, {"host": "attacker.example"}) == 421
        assert _post(port, {"origin": "http://attacker.example"}) == 403
    finally:
        _stop(proc)
