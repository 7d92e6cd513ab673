"""`paperfeed users` and `paperfeed serve`, run as real commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import run_cli


def test_users_create_and_list(data_dir: Path) -> None:
    r = run_cli("users", "create", "Boss@Example.org", "--password-stdin", "--admin", data=data_dir,
                input="a long enough password\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "created Boss@example.org (admin)" in r.stdout  # one validator: the domain is stored in lower case
    r = run_cli("users", "create", "boss@example.org", "--password-stdin", data=data_dir, input="another password\n")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = run_cli("users", "create", "short@example.org", "--password-stdin", data=data_dir, input="short\n")
    assert r.returncode == 1 and "at least 8" in r.stderr
    r = run_cli("users", "create", "reader@example.org", "--password-stdin", data=data_dir, input="reader password\n")
    assert r.returncode == 0
    listed = run_cli("users", "list", data=data_dir).stdout.splitlines()
    assert [line.split("\t")[1:3] for line in listed] == [["Boss@example.org", "admin"], ["reader@example.org", "user"]]
    r = run_cli("users", "verify", "READER@example.org", data=data_dir)
    assert r.returncode == 0 and "reader@example.org is verified" in r.stdout
    assert run_cli("users", "verify", "nobody@example.org", data=data_dir).returncode == 1
    from paperfeed.store import accounts as acc
    from paperfeed.store import open_store

    with open_store(data_dir) as store:
        assert [u.email_verified for u in acc.list_users(store)] == [False, True]


def test_serve_refuses_a_digest_interval_that_would_spin(data_dir: Path) -> None:
    r = run_cli("serve", "--no-sync", "--digest-every", "0.01", data=data_dir)
    assert r.returncode == 2 and "--digest-every" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # starts `serve`
def test_serve_starts_and_answers(data_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "paperfeed", "--data", str(data_dir), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "PAPERFEED_BASE_URL"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert r.status_code == 200 and "No papers yet" in r.text
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["store"]["ok"] is True and health["store"]["papers"] == 0
        # with no PAPERFEED_BASE_URL, absolute links point at the port actually served
        feed = httpx.get(f"http://127.0.0.1:{port}/feeds/daily.atom", timeout=5).text
        assert f"<id>http://127.0.0.1:{port}/feeds/daily.atom</id>" in feed
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    err = proc.stderr.read()
    assert "serving" in err
    assert f"PAPERFEED_BASE_URL is not set: links in pages, feeds and mail use http://127.0.0.1:{port}" in err


def test_a_configured_base_url_is_kept(tmp_path: Path) -> None:
    from paperfeed.config import Settings, is_configured, served_base_url

    assert not is_configured("base_url", tmp_path) or "PAPERFEED_BASE_URL" in os.environ
    (tmp_path / "config.toml").write_text('base_url = "https://papers.example.org/"\n')
    assert is_configured("base_url", tmp_path)
    assert Settings.load(tmp_path).base_url == "https://papers.example.org"
    assert served_base_url("0.0.0.0", 8123) == "http://127.0.0.1:8123"
    assert served_base_url("::1", 8123) == "http://[::1]:8123"


@pytest.mark.parametrize(
    ("env", "args", "names"),
    [
        ({"PAPERFEED_EMBEDDER": "bogus"}, ["models", "list"], ["PAPERFEED_EMBEDDER", "minilm-bf16"]),
        ({"PAPERFEED_SMTP_TLS": "bogus"}, ["digest", "send", "--period", "daily"], ["PAPERFEED_SMTP_TLS", "starttls"]),
        ({"PAPERFEED_SMTP_PORT": "abc"}, ["digest", "send", "--period", "daily"], ["PAPERFEED_SMTP_PORT", "whole number"]),
    ],
)
def test_bad_settings_are_named_not_a_traceback(tmp_path, env, args, names):
    res = run_cli(*args, data=tmp_path / "data", env=env, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    for name in names:
        assert name in res.stderr, res.stderr
