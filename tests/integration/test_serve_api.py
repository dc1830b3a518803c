"""The web API on a real smoke-profile run (tiny cgan + cvae on real PneumoniaMNIST), via TestClient."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")
pytestmark = pytest.mark.integration


def link_copy(src: Path, dst: Path) -> Path:
    """Copy a run folder as hard links (fast, no extra disk); the app only reads, so the shared run stays intact."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, copy_function=link)
    return dst


def png_of(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.squeeze()).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def runs_dir(smoke_run, tmp_path_factory):
    run_dir, _, _ = smoke_run
    root = tmp_path_factory.mktemp("serve") / "runs"
    root.mkdir()
    link_copy(run_dir, root / "smoke")
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text((run_dir / "manifest.json").read_text())
    os.symlink(outside, root / "escape")  # looks like a run, but lives outside --runs
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    from fastapi.testclient import TestClient

    from synthmed.serve import create_app

    with TestClient(create_app(runs_dir, max_n=64, cache_size=2), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def manifest(runs_dir):
    return json.loads((runs_dir / "smoke" / "manifest.json").read_text())


def test_health_and_run_list(client):
    assert client.get("/api/health").json()["status"] == "ok"
    runs = client.get("/api/runs").json()
    assert [r["name"] for r in runs] == ["smoke"]  # the outside symlink is not listed
    r = runs[0]
    assert r["status"] == "finished" and r["dataset"] == "pneumoniamnist_28" and r["date"]
    assert r["generators"] == 2 and r["classifiers"] >= 6


def test_run_detail_has_manifest_and_results(client, manifest, runs_dir):
    d = client.get("/api/runs/smoke").json()
    assert d["manifest"]["study"] == manifest["study"]
    assert d["results"] == json.loads((runs_dir / "smoke" / "results.json").read_text())
    assert {"condition", "metric", "value"} <= set(d["results"][0])


def test_report_data_has_tables_and_sample_grids(client):
    rep = client.get("/api/runs/smoke/report").json()
    conditions = {s["condition"] for s in rep["summaries"]["roc_auc"]}
    assert {"real", "synthetic", "real+synthetic"} <= conditions
    grids = [g["samples"] for g in rep["generators"]]
    assert len(grids) == 2 and all(g.startswith("data:image/png;base64,") for g in grids)


def test_generators_list(client):
    gens = client.get("/api/runs/smoke/generators").json()
    assert {g["id"] for g in gens} == {"cgan@0", "cvae@0"}
    g = {g["id"]: g for g in gens}
    assert g["cgan@0"]["classes"] == ["normal", "pneumonia"] and g["cgan@0"]["image_shape"] == [28, 28, 1]
    assert g["cgan@0"]["options"] == ["bn_stats"] and g["cvae@0"]["options"] == []


def test_generate_png_grid_has_the_right_size_and_is_deterministic(client):
    body = {"run": "smoke", "generator": "cgan@0", "class": "pneumonia", "n": 9, "seed": 3}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    assert img.shape == (3 * 30 + 2, 3 * 30 + 2)  # make_grid: 3x3 tiles of 28 px with 2 px padding
    assert client.post("/api/generate", json=body).content == r.content
    assert client.post("/api/generate", json={**body, "seed": 4}).content != r.content
    assert client.post("/api/generate", json={**body, "generator": "cvae", "class": 0}).status_code == 200
    re = client.post("/api/generate", json={**body, "bn_stats": "recompute"})  # the GANs' BatchNorm statistics knob
    assert re.status_code == 200 and re.content != r.content
    assert client.post("/api/generate", json={**body, "bn_stats": "ema"}).content == r.content
    r = client.post("/api/generate", json={**body, "generator": "cvae", "bn_stats": "recompute"})
    assert r.status_code == 400 and "takes no bn_stats" in r.json()["detail"]


def test_generate_zip_has_one_png_per_image(client):
    r = client.post("/api/generate", json={"run": "smoke", "generator": "cvae@0", "class": "normal", "n": 5, "format": "zip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="smoke_cvae_0_normal_seed0.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = z.namelist()
        assert len(names) == 5
        assert np.asarray(Image.open(io.BytesIO(z.read(names[0])))).shape == (28, 28)


@pytest.mark.parametrize("body, status, words", [
    ({"run": "nope"}, 404, "no run 'nope'"),
    ({"generator": "wgan@0"}, 404, "no generator 'wgan@0'"),
    ({"class": "covid"}, 404, "no class 'covid'"),
    ({"class": 5}, 404, "no class '5'"),
    ({"n": 65}, 400, "limit of 64"),
    ({"n": 0}, 422, "greater than or equal to 1"),
    ({"steps": 10}, 400, "takes no steps"),
    ({"steps": 100000}, 422, "less than or equal to 250"),
    ({"guidance": -1}, 422, "greater than or equal to 0"),
    ({"sampler": "ddim"}, 400, "takes no sampler"),
    ({"sampler": "ddpm"}, 422, "'ddim', 'dpm-solver' or 'unipc'"),
    ({"bn_stats": "fresh"}, 422, "'ema' or 'recompute'"),
    ({"format": "gif"}, 422, "'png' or 'zip'"),
    ({"colour": "red"}, 422, "Extra inputs"),
])
def test_generate_rejects_bad_requests(client, body, status, words):
    r = client.post("/api/generate", json={"run": "smoke", "generator": "cgan@0", "class": "normal", "n": 2, **body})
    assert r.status_code == status
    assert words in json.dumps(r.json())


@pytest.mark.parametrize("run", ["../smoke", "/etc", "/etc/passwd", "smoke/../smoke", "%2e%2e%2f", "..%2Fsmoke",
                                 "escape", "smoke/stages", ".."])
def test_run_names_are_never_paths(client, runs_dir, run):
    r = client.post("/api/generate", json={"run": run, "generator": "cgan@0", "class": "normal", "n": 1})
    assert r.status_code == 404 and "use a name from GET /api/runs" in r.json()["detail"]
    r = client.post("/api/classify", data={"run": run}, files={"file": ("x.png", png_of(np.zeros((28, 28), np.uint8)))})
    assert r.status_code == 404


@pytest.mark.parametrize("url", ["/api/runs/..%2F..%2Fetc", "/api/runs/%2e%2e", "/api/runs/escape",
                                 "/api/runs/..%252F..%252Fetc/generators", "/api/runs/escape/report",
                                 "/static/..%2F..%2Fapp.py", "/static/../app.py", "/api/runs/%2Fetc%2Fpasswd"])
def test_url_traversal_is_404(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert "manifest" not in r.text and "def create_app" not in r.text


def test_classify_real_test_image_with_every_condition(client, pneumonia_50shot, manifest):
    test = pneumonia_50shot["test"]
    big = np.asarray(Image.fromarray(test.images[0, ..., 0]).resize((300, 300)))  # any size is accepted
    r = client.post("/api/classify", data={"run": "smoke"}, files={"file": ("xray.png", png_of(big), "image/png")})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["image_shape"] == [28, 28, 1] and out["class_names"] == ["normal", "pneumonia"]
    n_first_seed = sum(1 for s in manifest["stages"] if s["kind"] == "classify")  # smoke has one seed
    assert len(out["results"]) == n_first_seed
    for res in out["results"]:
        assert abs(sum(res["probabilities"].values()) - 1) < 1e-4 and res["predicted"] in out["class_names"]


def test_classify_exact_input_matches_the_classifier(client, runs_dir, pneumonia_50shot, manifest):
    from synthmed.classify import TrainedClassifier

    img = pneumonia_50shot["test"].images[:1]  # 28x28: no resize, so the API must give the classifier's own answer
    stage = next(s for s in manifest["stages"] if s["kind"] == "classify" and s["labels"]["condition"] == "real")
    want = TrainedClassifier.load(runs_dir / "smoke" / stage["folder"] / "classifier.pt").predict_proba(img)[0]
    r = client.post("/api/classify", data={"run": "smoke", "conditions": ["real"]}, files={"file": ("a.png", png_of(img[0]))})
    got = r.json()["results"]
    assert [g["condition"] for g in got] == ["real"]
    np.testing.assert_allclose(list(got[0]["probabilities"].values()), want, atol=1e-5)


@pytest.mark.parametrize("data, status, words", [
    (b"GIF89a not really", 400, "PNG or JPEG"),
    (b"hello", 400, "not a readable image"),
    (b"", 400, "empty"),
])
def test_classify_rejects_non_images(client, data, status, words):
    r = client.post("/api/classify", data={"run": "smoke"}, files={"file": ("x.png", data)})
    assert r.status_code == status and words in r.json()["detail"]


def test_classify_rejects_decompression_bomb_and_huge_uploads(client):
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # 400 MP in a few tens of kB
    r = client.post("/api/classify", data={"run": "smoke"}, files={"file": ("bomb.png", buf.getvalue())})
    assert r.status_code == 413 and "pixels" in r.json()["detail"]
    r = client.post("/api/classify", data={"run": "smoke"}, files={"file": ("big.png", b"\0" * (9 * 2**20))})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_classify_unknown_condition_is_404(client):
    r = client.post("/api/classify", data={"run": "smoke", "conditions": ["real+gan"]},
                    files={"file": ("a.png", png_of(np.zeros((28, 28), np.uint8)))})
    assert r.status_code == 404 and "real+synthetic" in r.json()["detail"]


def test_openapi_schema_and_page_are_local(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/generate", "/api/classify", "/api/runs", "/api/runs/{run}", "/api/health"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


def test_models_are_cached(client):
    state = client.app.state.synthmed
    body = {"run": "smoke", "generator": "cgan@0", "class": "normal", "n": 1}
    client.post("/api/generate", json=body)
    before = state.cache.loads
    client.post("/api/generate", json=body)
    assert state.cache.loads == before and len(state.cache) <= 2


def test_the_app_never_writes_into_the_runs_folder(client, runs_dir):
    before = sorted((p, p.stat().st_mtime_ns) for p in runs_dir.rglob("*"))
    client.post("/api/generate", json={"run": "smoke", "generator": "cgan@0", "class": "normal", "n": 2})
    client.get("/api/runs/smoke/report")
    assert sorted((p, p.stat().st_mtime_ns) for p in runs_dir.rglob("*")) == before
