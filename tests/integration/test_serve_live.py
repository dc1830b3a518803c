"""The app served by a real uvicorn on 127.0.0.1: the page in headless Chromium, and a burst of 50 requests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")
uvicorn = pytest.importorskip("uvicorn", reason="pip install 'synthmed[web]'")
pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(smoke_run, tmp_path_factory):
    """uvicorn in a thread over a hard-linked copy of the smoke run; yields the base URL."""
    from test_serve_api import link_copy

    from synthmed.serve import create_app

    root = tmp_path_factory.mktemp("live") / "runs"
    root.mkdir()
    link_copy(smoke_run[0], root / "smoke")
    app = create_app(root, concurrency=2, queue=8)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)


@pytest.mark.browser
def test_page_generates_and_classifies_in_chromium(live_server, browser_page, pneumonia_50shot, tmp_path):
    url, _ = live_server
    page = browser_page
    page.set_default_timeout(60_000)
    page.goto(url + "/")
    page.click("#runs-table a:text('smoke')")
    page.wait_for_selector("#gen-generator option[value='cgan@0']", state="attached")
    page.wait_for_selector("#sample-grids img")  # the run view shows the report's sample grids
    assert page.locator("table.summary[data-metric='roc_auc'] tbody tr").count() >= 4

    page.select_option("#gen-generator", "cvae@0")
    page.select_option("#gen-class", "pneumonia")
    page.fill("#gen-n", "12")
    page.click("#gen-submit")
    page.wait_for_selector("#gen-size:not(:empty)")  # set by the image's onload (CSP forbids wait_for_function's eval)
    size = page.evaluate("[document.querySelector('#gen-image').naturalWidth, document.querySelector('#gen-image').naturalHeight]")
    assert size == [4 * 30 + 2, 3 * 30 + 2]  # 12 tiles → 4 per row, 3 rows, 28 px + 2 px padding
    assert page.get_attribute("#gen-download", "href").startswith("blob:")
    assert page.get_attribute("#gen-download", "download").endswith(".png")

    xray = tmp_path / "test_xray.png"
    Image.fromarray(pneumonia_50shot["test"].images[0, ..., 0]).resize((224, 224), Image.BICUBIC).save(xray)
    page.set_input_files("#cls-file", str(xray))
    page.click("#cls-submit")
    page.wait_for_selector("#cls-table tr.prob-row")
    rows = page.locator("#cls-table tr.prob-row")
    assert rows.count() >= 6  # every condition's classifier, side by side
    assert "real [-] seed 0" in page.inner_text("#cls-table")
    assert page.locator("#error").is_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)
    assert page.console_errors == []


@pytest.mark.browser
def test_page_error_alone_full_width_figures_labelled_rows_and_upload_warning(live_server, browser_page, tmp_path):
    """Issue 15 §5: an error is shown alone (not above the previous run's tables); figures use the page
    width instead of 260 px cards; sample grids say which row is which class; a colour upload is flagged."""
    url, _ = live_server
    page = browser_page
    page.set_default_timeout(60_000)
    page.goto(url + "/#/run/smoke")
    page.wait_for_selector("#sample-grids img")
    page.wait_for_selector("table.summary")
    widths = page.evaluate("[...document.querySelectorAll('#sample-grids img')].map(i => i.getBoundingClientRect().width)")
    assert max(widths) > 600, widths  # the real-vs-generators figure at (near) page width
    assert min(widths) >= 260, widths
    assert "normal, pneumonia" in page.inner_text("#sample-grids")  # row order named under each grid

    photo = tmp_path / "holiday.png"
    img = Image.new("RGB", (128, 96), (90, 160, 235))
    img.paste((60, 170, 70), (0, 48, 128, 96))
    img.save(photo)
    page.set_input_files("#cls-file", str(photo))
    page.click("#cls-submit")
    page.wait_for_selector("#cls-warnings:not([hidden])")
    assert "colour image" in page.inner_text("#cls-warnings")

    page.goto(url + "/#/run/no-such-run")
    page.wait_for_selector("#error:not([hidden])")
    assert "no run 'no-such-run'" in page.inner_text("#error")
    assert page.locator("#run-view").is_hidden() and page.locator("#runs-view").is_hidden()
    assert page.locator("table.summary").count() == 0 and page.locator("#sample-grids img").count() == 0
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
    assert [e for e in page.console_errors if "404" not in e] == []


def test_fifty_concurrent_generate_requests(live_server):
    """All 200 or 429 (with Retry-After), none 5xx, and /api/health answers quickly meanwhile."""
    import httpx

    url, app = live_server
    body = {"run": "smoke", "generator": "cgan@0", "class": "normal", "n": 64}

    async def main():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            await client.post("/api/generate", json={**body, "n": 1})  # warm the model cache

            async def one(i):
                return await client.post("/api/generate", json={**body, "seed": i})

            burst = asyncio.gather(*(one(i) for i in range(50)))
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            health = await client.get("/api/health")
            health_s = time.perf_counter() - t0
            return await asyncio.wait_for(burst, 180), health, health_s

    t0 = time.perf_counter()
    responses, health, health_s = asyncio.run(main())
    wall = time.perf_counter() - t0
    codes = [r.status_code for r in responses]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "serve_load.json").write_text(json.dumps(
        {"requests": 50, "n": body["n"], "ok": codes.count(200), "busy_429": codes.count(429),
         "other": [c for c in codes if c not in (200, 429)], "health_s": health_s, "wall_s": wall,
         "load_1min": os.getloadavg()[0]}, indent=2))
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 10  # the 2 running + 8 queued at least
    assert all(r.headers.get("retry-after", "").isdigit() for r in responses if r.status_code == 429)
    assert health.status_code == 200 and health_s < 5.0, health_s  # generous: the CI machine is shared
    assert app.state.synthmed.gate.running == 0 and app.state.synthmed.gate.waiting == 0
