"""On a real smoke run: the report never reads through links that leave the run (issue 15 §3.2), and an
upload unlike the training images is flagged (§5), with the threshold calibrated on held-out real images."""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")
pytestmark = pytest.mark.integration


def png_of(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.squeeze()).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def run_copy(smoke_run, tmp_path):
    from test_serve_api import link_copy

    root = tmp_path / "runs"
    root.mkdir()
    link_copy(smoke_run[0], root / "smoke")
    return root, json.loads((root / "smoke" / "manifest.json").read_text())


def client_for(root, **kw):
    from fastapi.testclient import TestClient

    from synthmed.serve import create_app

    return TestClient(create_app(root, **kw), base_url="http://127.0.0.1", raise_server_exceptions=False)


def _folder(manifest, kind):
    return next(s["folder"] for s in manifest["stages"] if s["kind"] == kind)


@pytest.mark.parametrize("kind,name", [("split", "examples.png"), ("fidelity", "fidelity.json"), ("split", None)])
def test_report_never_reads_through_links_that_leave_the_run(run_copy, tmp_path, kind, name):
    root, manifest = run_copy
    secret_png = png_of(np.full((8, 8), 7, dtype=np.uint8))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "examples.png").write_bytes(secret_png)
    (outside / "fidelity.json").write_text(json.dumps({"overall": {"fid": "TOPSECRET-4711"}}))
    target = root / "smoke" / _folder(manifest, kind)
    if name is None:  # the whole stage folder is a link to an outside folder
        for p in target.iterdir():
            p.unlink()
        target.rmdir()
        os.symlink(outside, target)
    else:
        (target / name).unlink()
        os.symlink(outside / name, target / name)
    with client_for(root) as c:
        r = c.get("/api/runs/smoke/report")
    assert r.status_code in (404, 409) and "outside" in r.json()["detail"], r.text[:300]
    assert base64.b64encode(secret_png).decode() not in r.text and "TOPSECRET" not in r.text


def test_report_still_served_for_a_clean_run(run_copy):
    root, _ = run_copy
    with client_for(root) as c:
        r = c.get("/api/runs/smoke/report")
    assert r.status_code == 200 and r.json()["generators"]


# -- out-of-distribution warning ------------------------------------------------------------------------
@pytest.fixture
def ood_client(run_copy, data_dir):
    root, _ = run_copy
    with client_for(root, data_dir=str(data_dir)) as c:
        yield c


def _classify(client, data: bytes) -> dict:
    r = client.post("/api/classify", data={"run": "smoke"}, files={"file": ("x.png", data, "image/png")})
    assert r.status_code == 200, r.text
    return r.json()


def test_held_out_real_image_gets_no_warning(ood_client, pneumonia_50shot):
    test = pneumonia_50shot["test"].images
    out = _classify(ood_client, png_of(test[0]))
    assert out["warnings"] == [] and out["results"]
    # calibration: the threshold is the 99th percentile of held-out (val) distances, so real test
    # images are flagged at about that rate, not more
    from synthmed.classify import TrainedClassifier

    (key, ref), = ood_client.app.state.synthmed.domains._refs.items()  # one reference: the "real" classifier
    clf = TrainedClassifier.load(f"{key}/classifier.pt")
    flagged = float(np.mean(ref.distances(clf.embed(test[:300])) > ref.threshold))
    assert flagged <= 0.05, f"{flagged:.1%} of real test images flagged"


@pytest.mark.parametrize("kind", ["colour-photo", "grey-noise"])
def test_far_off_uploads_are_flagged(ood_client, kind):
    rng = np.random.default_rng(0)
    if kind == "colour-photo":  # a smooth colourful scene: sky over grass, a red disc
        img = np.zeros((96, 128, 3), dtype=np.uint8)
        img[:48] = (90, 160, 235)
        img[48:] = (60, 170, 70)
        yy, xx = np.mgrid[:96, :128]
        img[(yy - 40) ** 2 + (xx - 90) ** 2 < 15 ** 2] = (220, 30, 30)
    else:  # at the training size, so the squash-resize does not smooth it
        img = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    out = _classify(ood_client, png_of(img))
    text = " ".join(out["warnings"])
    if kind == "colour-photo":  # the channel check (the smoke run's 4-step classifier cannot tell a smooth photo apart)
        assert "colour image" in text and "converted to grey" in text, out
    else:
        assert "far from the images the classifiers were trained on" in text, out
