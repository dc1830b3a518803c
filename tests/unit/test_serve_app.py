"""The app over a runs folder without trained models: listing, statuses, 404 messages, schema, page, limits."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")

from fastapi.testclient import TestClient  # noqa: E402

from synthmed.serve import create_app  # noqa: E402
from synthmed.serve.app import plain  # noqa: E402

MANIFEST = {
    "study": "tiny", "finished_at": "2026-01-01T00:00:00+00:00", "seeds": [0],
    "config": {"dataset": {"name": "pneumoniamnist", "size": 28}},
    "stages": [{"name": "split seed 0", "kind": "split", "folder": "stages/split-1", "labels": {"seed": 0},
                "summary": {"class_names": ["normal", "pneumonia"], "image_shape": [28, 28, 1]}, "config": {}}],
}


@pytest.fixture
def client(tmp_path):
    runs = tmp_path / "runs"
    (runs / "done").mkdir(parents=True)
    (runs / "done" / "manifest.json").write_text(json.dumps(MANIFEST))
    (runs / "done" / "results.json").write_text("[]")
    (runs / "busy" / "stages" / "split-1").mkdir(parents=True)
    (runs / "busy" / "config.yaml").write_text("name: busy\n")
    (runs / "busy" / "stages" / "split-1" / "stage.json").write_text("{}")
    with TestClient(create_app(runs, max_n=8), base_url="http://127.0.0.1") as c:
        yield c


def test_listing_reports_finished_and_incomplete_runs(client):
    runs = {r["name"]: r for r in client.get("/api/runs").json()}
    assert runs["done"]["status"] == "finished" and runs["done"]["dataset"] == "pneumoniamnist_28"
    assert runs["busy"]["status"] == "incomplete" and runs["busy"]["stages_done"] == 1 and runs["busy"]["date"] is None


def test_incomplete_run_detail_says_to_wait(client):
    r = client.get("/api/runs/busy")
    assert r.status_code == 404 and "not finished" in r.json()["detail"]


def test_unknown_run_suggests_a_listed_name(client):
    r = client.get("/api/runs/don/generators")
    assert r.status_code == 404 and "did you mean 'done'" in r.json()["detail"]


def test_run_without_generators_or_classifiers(client):
    assert client.get("/api/runs/done/generators").json() == []
    r = client.post("/api/generate", json={"run": "done", "generator": "cgan@0", "class": "normal", "n": 2})
    assert r.status_code == 404 and "no generator 'cgan@0'" in r.json()["detail"]
    r = client.post("/api/classify", data={"run": "done"}, files={"file": ("a.png", b"\x89PNG")})
    assert r.status_code == 404 and "no trained classifiers" in r.json()["detail"]


def test_n_above_the_server_limit_is_refused_before_any_work(client):
    r = client.post("/api/generate", json={"run": "done", "generator": "x", "class": "normal", "n": 9})
    assert r.status_code == 400 and "limit of 8" in r.json()["detail"]


def test_oversized_upload_is_refused_from_its_content_length(tmp_path):
    with TestClient(create_app(tmp_path, max_upload_bytes=1000), base_url="http://127.0.0.1") as c:
        r = c.post("/api/classify", data={"run": "x"}, files={"file": ("a.png", b"\0" * 200_000)})
    assert r.status_code == 413 and "limit is 1000 bytes" in r.json()["detail"]


def test_health_schema_and_local_page(client):
    assert client.get("/api/health").json() == {"status": "ok", "runs": 2, "running": 0, "queued": 0, "cached_models": 0}
    schema = client.get("/openapi.json").json()
    assert "GenerateRequest" in schema["components"]["schemas"]
    assert "class" in schema["components"]["schemas"]["GenerateRequest"]["properties"]
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_plain_makes_report_data_json_safe():
    import numpy as np

    assert plain({"a": np.float32(0.5), "b": [float("nan"), np.int64(3)], 1: (np.inf,)}) == \
        {"a": 0.5, "b": [None, 3], "1": [None]}
