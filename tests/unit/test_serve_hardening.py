"""Issue 15 §3–§5, web app: code execution from a run folder, files outside the run, Host header,
framing, headers on 500s, 500 → 4xx, bounded work, the docs pages. Each test failed before its fix.

The run here is small but real: a tiny cgan fitted on 8 images and saved the way a study saves it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")

from fastapi.testclient import TestClient  # noqa: E402

from synthmed.serve import create_app  # noqa: E402
from synthmed.serve.security import BadUploadError, UploadTooLargeError, read_upload_image  # noqa: E402

GEN_FOLDER = "stages/generator-1"
MANIFEST = {
    "study": "tiny", "finished_at": "2026-01-01T00:00:00+00:00", "seeds": [0],
    "config": {"dataset": {"name": "pneumoniamnist", "size": 28}},
    "stages": [
        {"name": "split seed 0", "kind": "split", "folder": "stages/split-1", "labels": {"seed": 0},
         "summary": {"class_names": ["normal", "pneumonia"], "image_shape": [28, 28, 1]}, "config": {}},
        {"name": "generator cgan", "kind": "generator", "folder": GEN_FOLDER, "labels": {"generator": "cgan", "seed": 0},
         "config": {"family": "cgan", "config": {}}},
    ],
}
GOOD = {"run": "done", "generator": "cgan@0", "class": "normal", "n": 2}


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling this writes the marker file
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


@pytest.fixture(scope="module")
def saved_cgan(tmp_path_factory):
    from synthmed.generators import make_generator

    rng = np.random.default_rng(0)
    gen = make_generator("cgan", tiny=True).fit(rng.integers(0, 256, (8, 28, 28, 1), dtype=np.uint8),
                                                np.array([0, 1] * 4))
    path = tmp_path_factory.mktemp("cgan") / "generator.pt"
    gen.save(path)
    return path


@pytest.fixture
def runs(tmp_path, saved_cgan):
    root = tmp_path / "runs"
    run = root / "done"
    (run / GEN_FOLDER).mkdir(parents=True)
    (run / "stages" / "split-1").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps(MANIFEST))
    (run / "results.json").write_text("[]")
    (run / GEN_FOLDER / "generator.pt").write_bytes(saved_cgan.read_bytes())
    secret = tmp_path / "outside" / "secret.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"stages": [], "results": "TOPSECRET-4711"}))
    return root, secret


def client_for(root, **kw) -> TestClient:
    return TestClient(create_app(root, **kw), base_url="http://127.0.0.1", raise_server_exceptions=False)


# -- §3.1 code execution ------------------------------------------------------------------------------
def test_generate_on_a_crafted_pickle_is_refused_and_runs_no_code(runs, tmp_path):
    root, _ = runs
    marker = tmp_path / "PWNED"
    with client_for(root) as c:
        assert c.post("/api/generate", json=GOOD).status_code == 200  # the real checkpoint works
        path = root / "done" / GEN_FOLDER / "generator.pt"
        path.write_bytes(pickle.dumps({"family": "cgan", "x": _Payload(marker)}))
        os.utime(path, ns=(1, 1))  # a new mtime: the cached model is not reused
        r = c.post("/api/generate", json=GOOD)
    assert r.status_code == 409 and "pickle" in r.json()["detail"], r.text
    assert not marker.exists(), "the crafted generator.pt ran code inside the server"
    assert str(tmp_path) not in r.text  # no server path in the message


def test_truncated_generator_is_409_not_500(runs):
    root, _ = runs
    path = root / "done" / GEN_FOLDER / "generator.pt"
    path.write_bytes(path.read_bytes()[:500])
    with client_for(root) as c:
        r = c.post("/api/generate", json=GOOD)
    assert r.status_code == 409 and "truncated" in r.json()["detail"]


# -- §3.2 files outside the run ------------------------------------------------------------------------
@pytest.mark.parametrize("relative,url", [("manifest.json", "/api/runs/done"), ("results.json", "/api/runs/done"),
                                          (f"{GEN_FOLDER}/generator.pt", None)])
def test_symlinks_to_an_outside_file_are_never_read(runs, relative, url):
    root, secret = runs
    target = root / "done" / relative
    target.unlink()
    os.symlink(secret, target)
    with client_for(root) as c:
        r = c.get(url) if url else c.post("/api/generate", json=GOOD)
        listing = c.get("/api/runs").text
    assert 400 <= r.status_code < 500, r.text
    assert "TOPSECRET" not in r.text and "TOPSECRET" not in listing


# -- §3.3 Host header, framing, headers on every response ----------------------------------------------
@pytest.mark.parametrize("host,ok", [("127.0.0.1:8000", True), ("localhost", True), ("[::1]:8000", True),
                                     ("evil.example", False), ("attacker.test:8000", False)])
def test_host_header_is_checked(runs, host, ok):
    root, _ = runs
    with client_for(root) as c:
        r = c.get("/api/runs", headers={"Host": host})
    assert (r.status_code == 200) == ok
    assert r.headers["x-frame-options"] == "DENY"


def test_configured_host_is_allowed(runs):
    root, _ = runs
    with client_for(root, host="synthmed.lab.internal") as c:
        assert c.get("/api/health", headers={"Host": "synthmed.lab.internal:8000"}).status_code == 200
        assert c.get("/api/health", headers={"Host": "other.internal"}).status_code == 400


def test_security_headers_on_every_response_including_500(runs):
    root, _ = runs
    app = create_app(root)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("a bug")

    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        responses = [c.get("/"), c.get("/api/runs/nope"), c.post("/api/generate", json={}), c.get("/boom")]
    assert [r.status_code for r in responses] == [200, 404, 422, 500]
    for r in responses:
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], r.status_code
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


# -- §4 500 → 4xx --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["²", "٣", "-1", "99", "pneumonia "])
def test_odd_class_values_are_404(runs, cls):
    root, _ = runs
    with client_for(root) as c:
        r = c.post("/api/generate", json={**GOOD, "class": cls})
    assert r.status_code == 404 and "normal" in r.json()["detail"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_guidance_is_422(runs, value):
    root, _ = runs
    body = json.dumps({**GOOD}).replace("}", f', "guidance": {value}}}')
    with client_for(root) as c:
        r = c.post("/api/generate", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "guidance"]


@pytest.mark.parametrize("name,content", [("manifest.json", "{not json"), ("manifest.json", "[1, 2]"),
                                          ("manifest.json", '{"stages": [{"kind": "generator"}]}'),
                                          ("results.json", "\x00\x01garbage")])
def test_corrupt_run_files_are_409_with_one_line(runs, name, content):
    root, _ = runs
    (root / "done" / name).write_text(content)
    with client_for(root) as c:
        r = c.get("/api/runs/done")
        listing = {x["name"]: x for x in c.get("/api/runs").json()}
    assert r.status_code == 409 and name in r.json()["detail"] and "\n" not in r.json()["detail"]
    assert listing["done"]["status"] == ("unreadable" if name == "manifest.json" else "finished")


# -- §4 unbounded work ---------------------------------------------------------------------------------
def test_generate_body_is_capped_and_422_does_not_echo_the_body(runs):
    root, _ = runs
    with client_for(root) as c:
        huge = c.post("/api/generate", content=b'{"run": "' + b"A" * 5_000_000 + b'"}',
                      headers={"Content-Type": "application/json"})
        echo = c.post("/api/generate", json={**GOOD, "junk": "B" * 60_000})
    assert huge.status_code == 413 and len(huge.content) < 500
    assert echo.status_code == 422 and len(echo.content) < 1000 and "BBBB" not in echo.text


def _asgi_post(app, path: str, headers: list[tuple[bytes, bytes]], chunks: int, chunk: bytes):
    """POST ``chunks`` × ``chunk`` to ``app`` as a stream with no Content-Length (chunked transfer).
    Returns (status, chunks the app consumed)."""
    consumed, sent = 0, []

    async def receive():
        nonlocal consumed
        consumed += 1
        return {"type": "http.request", "body": chunk, "more_body": consumed < chunks}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"transfer-encoding", b"chunked"), *headers],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), consumed


def test_chunked_upload_is_refused_while_it_streams_not_after_spooling(runs):
    root, _ = runs
    app = create_app(root, max_upload_bytes=1 << 20)  # 1 MiB
    boundary = b"xyz"
    head = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
    status, consumed = _asgi_post(app, "/api/classify", [(b"content-type", b"multipart/form-data; boundary=" + boundary)],
                                  chunks=64, chunk=head + b"\0" * (1 << 20))  # 64 MiB offered
    assert status == 413
    assert consumed <= 3, f"the app read {consumed} MiB of a 64 MiB stream before refusing"
    status, consumed = _asgi_post(app, "/api/generate", [(b"content-type", b"application/json")], chunks=64,
                                  chunk=b" " * (1 << 20))
    assert status == 413 and consumed <= 2


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size,error", [((24_000_000, 1), UploadTooLargeError), ((1, 20_000), UploadTooLargeError),
                                        ((4000, 100), BadUploadError)])
def test_images_are_bounded_by_side_and_aspect_before_decoding(size, error, monkeypatch):
    data = _png(Image.new("L", size))
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded before the size checks"))
    with pytest.raises(error):
        read_upload_image(data, max_bytes=1 << 26, max_pixels=25_000_000)


# -- §5 docs pages -------------------------------------------------------------------------------------
def test_docs_pages_point_to_the_schema_instead_of_a_blank_cdn_page(runs):
    root, _ = runs
    with client_for(root) as c:
        for url in ("/docs", "/redoc"):
            r = c.get(url)
            assert r.status_code == 404 and "/openapi.json" in r.json()["detail"] and "cdn.jsdelivr" not in r.text
        assert c.get("/openapi.json").status_code == 200
