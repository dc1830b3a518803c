"""Headless Chromium for tests (Debian's package driven by Playwright; no browser download)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@contextlib.contextmanager
def browser_page(viewport=(1200, 900)):
    """Yield a Playwright page in headless Chromium; skip the test when no browser is installed."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium found: install it (Debian/Ubuntu: apt-get install chromium) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                                                   viewport={"width": viewport[0], "height": viewport[1]})
        try:
            page = ctx.new_page()
            page.console_errors = []
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("pageerror", lambda e: page.console_errors.append(str(e)))
            yield page
        finally:
            ctx.close()
