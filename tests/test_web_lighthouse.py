"""Lighthouse (npm) in Debian's headless Chromium against the real server on 127.0.0.1:
the home page scores at least 95 in performance, accessibility, best practices and SEO.

`make test` installs Lighthouse into .cache/lighthouse (`make browser`); run by hand
without it, the test is skipped and says so. `paperfeed bench lighthouse` prints the
same scores and the audits that cost points.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paperfeed.bench.lighthouse import (
    CATEGORIES,
    LighthouseMissing,
    failed_audits,
    lighthouse_bin,
    run_lighthouse,
    scores,
)
from tests.webserver import demo_server

try:
    lighthouse_bin()
    MISSING = ""
except LighthouseMissing as exc:
    MISSING = str(exc)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(bool(MISSING), reason=MISSING or "-"),
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="chromium is not installed (make browser)"),
]

MIN_SCORE = 95


def test_home_page_scores_at_least_95_in_every_lighthouse_category() -> None:
    srv = demo_server()
    report = run_lighthouse(f"{srv.url}/")
    got = scores(report)
    assert set(got) == set(CATEGORIES)
    assert report["finalDisplayedUrl"].startswith(srv.url)  # it scored our page, not an error page
    assert all(v >= MIN_SCORE for v in got.values()), (got, failed_audits(report))
