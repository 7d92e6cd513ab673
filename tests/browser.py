"""Headless Chromium for the browser tests: where it is, how it starts, a tab that records
console errors, and axe-core's script."""

from __future__ import annotations

from pathlib import Path

from tests.webserver import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class Tab:
    """A page that records console errors, so each test can assert there were none."""

    def __init__(self, browser: object, srv: LiveServer, **context_args: object) -> None:
        self.context = browser.new_context(base_url=srv.url, **context_args)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)

    def serious_axe_violations(self) -> list[str]:
        """axe-core's serious and critical violations on the current page, one line each."""
        assert AXE is not None
        self.page.add_script_tag(path=str(AXE))
        result = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        return [f"{v['id']} ×{len(v['nodes'])}: {v['nodes'][0]['html'][:120]}" for v in result["violations"]
                if v["impact"] in ("serious", "critical")]  # fmt: skip

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors


def axe_script() -> Path | None:
    """axe-core from PAPERFEED_AXE_JS, or an `npm install axe-core` in the usual places."""
    import os
    import shutil
    import subprocess

    candidates = [os.environ.get("PAPERFEED_AXE_JS", "")]
    npm = shutil.which("npm")
    if npm:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=30).stdout.strip()
        candidates.append(f"{root}/axe-core/axe.min.js")
    candidates.append(str(Path.cwd() / "node_modules/axe-core/axe.min.js"))
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


AXE = axe_script()
