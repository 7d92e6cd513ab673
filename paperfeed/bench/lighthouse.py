"""`paperfeed bench lighthouse`: Lighthouse's four category scores for a page of the site.

Lighthouse (npm) drives Debian's Chromium headless against the real server on 127.0.0.1
(a throw-away demo data dir, or --url for a running site). Nothing leaves the machine:
Chromium runs with background networking, component updates and sync off, and the page
loads nothing but the site itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson

CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
CHROME_FLAGS = ("--headless --no-sandbox --disable-gpu --disable-background-networking "
                "--disable-component-update --disable-sync")  # fmt: skip
# where `make browser` installs it, relative to the checkout
DEFAULT_BIN = Path(".cache/lighthouse/node_modules/.bin/lighthouse")


class LighthouseMissing(RuntimeError):
    pass


def lighthouse_bin() -> Path:
    """PAPERFEED_LIGHTHOUSE, else `make browser`'s copy in .cache/lighthouse, else one on PATH."""
    for candidate in (os.environ.get("PAPERFEED_LIGHTHOUSE", ""), str(Path.cwd() / DEFAULT_BIN),
                      str(Path(__file__).resolve().parents[2] / DEFAULT_BIN), shutil.which("lighthouse") or ""):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise LighthouseMissing("Lighthouse is not installed: run `make browser` "
                            "(npm install --prefix .cache/lighthouse lighthouse) or set PAPERFEED_LIGHTHOUSE")  # fmt: skip


def run_lighthouse(url: str, *, chrome: str = "/usr/bin/chromium", timeout: float = 300) -> dict:
    """Lighthouse's JSON report (lhr) for `url`, desktop and mobile settings at their defaults."""
    with tempfile.TemporaryDirectory(prefix="paperfeed-lighthouse-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [str(lighthouse_bin()), url, "--quiet", "--output=json", f"--output-path={out}",
               f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={CHROME_FLAGS}"]  # fmt: skip
        env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", chrome)}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if r.returncode != 0 or not out.exists():
            raise RuntimeError(f"lighthouse failed ({r.returncode}): {r.stderr[-2000:]}")
        return orjson.loads(out.read_bytes())


def scores(report: dict) -> dict[str, int]:
    """Category scores out of 100, as Lighthouse shows them."""
    return {k: round((report["categories"][k]["score"] or 0) * 100) for k in CATEGORIES}


def failed_audits(report: dict) -> list[str]:
    """The audits that cost points, for fixing: id, score and Lighthouse's one-line value."""
    out = []
    for a in report["audits"].values():
        if a.get("scoreDisplayMode") in ("binary", "numeric", "metricSavings") and a.get("score") is not None \
                and a["score"] < 1:  # fmt: skip
            out.append(f"{a['id']} {a['score']:.2f} {a.get('displayValue', '')}".rstrip())
    return sorted(out)


def score_pages(url: str | None, paths: Sequence[str]) -> dict[str, dict]:
    """Lighthouse's scores and failed audits of `url`, or of `paths` on a throw-away demo server."""
    from paperfeed.web.bench import _free_port, _prepare_demo, _start_server, _stop, _wait_ready

    lighthouse_bin()
    results: dict[str, dict] = {}
    if url:
        targets = [url]
        proc = tmp = None
    else:
        tmp = Path(tempfile.mkdtemp(prefix="paperfeed-lighthouse-"))
        data = _prepare_demo(tmp)
        port = _free_port()
        log_path = tmp / "server.log"
        proc = _start_server(data, port, 1, log_path)
        base = f"http://127.0.0.1:{port}"
        targets = [base + p for p in paths]
    try:
        if proc is not None and tmp is not None:
            _wait_ready(base, proc, tmp / "server.log")
        for target in targets:
            report = run_lighthouse(target)
            results[target] = {"scores": scores(report), "failed_audits": failed_audits(report),
                               "lighthouse": report.get("lighthouseVersion")}  # fmt: skip
    finally:
        if proc is not None:
            _stop(proc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return results
