"""The FastAPI app: browse study runs, generate images on demand, classify an uploaded image.

Read-only over ``runs_dir``. Routes (the schema is at ``/openapi.json``, the docs at ``/docs``):

    GET  /                              the page (static/index.html; everything served locally)
    GET  /api/health                    liveness + queue state
    GET  /api/runs                      runs: name, dataset, date, status
    GET  /api/runs/{run}                manifest + tidy results table
    GET  /api/runs/{run}/report         the report's data (key tables, sample grids as data URIs)
    GET  /api/runs/{run}/generators     trained generators (family, classes, image size, options)
    GET  /api/runs/{run}/classifiers    trained classifiers (condition, generator, seed)
    POST /api/generate                  {run, generator, class, n, seed, steps?, guidance?, format} → PNG grid | zip
    POST /api/classify                  multipart: file + run + conditions → probabilities per classifier
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from synthmed.errors import SynthmedError
from synthmed.serve import models as m
from synthmed.serve.gate import BusyError, JobGate
from synthmed.serve.schemas import (
    ClassifierInfo,
    ClassifyResponse,
    GenerateRequest,
    GeneratorInfo,
    Health,
    RunSummary,
)
from synthmed.serve.security import (
    NotFoundError,
    UploadTooLargeError,
    list_run_folders,
    resolve_inside,
    resolve_run,
    upload_to_array,
)
from synthmed.utils.runtime import configure_torch_cpu

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 8 * 2**20  # 8 MiB: a full-resolution chest X-ray PNG or a phone JPEG fits
MAX_UPLOAD_PIXELS = 25_000_000  # 25 MP: any phone photo; a decompression bomb is refused before decoding
# Same-origin only and no remote hosts: the page must work offline, and this enforces it in the browser.
CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; object-src 'none'"


# -- helpers ----------------------------------------------------------------------------------------
def plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars → Python, NaN/inf → None (browsers' JSON.parse rejects NaN)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def run_summary(name: str, run_dir: Path) -> RunSummary:
    stages_done = sum(1 for _ in (run_dir / "stages").glob("*/stage.json")) if (run_dir / "stages").is_dir() else 0
    try:
        man = m.read_manifest(run_dir)
    except (NotFoundError, ValueError):  # still running (or a manifest being replaced): list it as incomplete
        return RunSummary(name=name, status="incomplete", stages_done=stages_done)
    ds = man.get("config", {}).get("dataset", {})
    return RunSummary(name=name, study=man.get("study"), dataset=f"{ds.get('name')}_{ds.get('size')}",
                      date=man.get("finished_at"), status="finished", stages_done=stages_done,
                      generators=len(m.run_generators(man)), classifiers=len(m.run_classifiers(man)))


def _gen_defaults(entry: m.GeneratorEntry, options: set[str]) -> dict[str, Any]:
    names = {"steps": "sample_steps", "guidance": "guidance"}
    return {k: entry.config[names[k]] for k in sorted(options) if names[k] in entry.config}


def images_to_zip(images: np.ndarray, class_name: str) -> bytes:
    """One PNG per image in a zip (stored, not deflated: PNGs are already compressed)."""
    from synthmed.imaging import png_bytes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i, img in enumerate(images):
            z.writestr(f"{class_name}_{i:04d}.png", png_bytes(img))
    return buf.getvalue()


def _safe_filename(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


# -- the app ----------------------------------------------------------------------------------------
class ServeState:
    """Everything one app instance holds: the runs folder, limits, the job gate and the model cache."""

    def __init__(self, runs_dir: Path, *, max_n: int, concurrency: int, queue: int, cache_size: int,
                 max_upload_bytes: int, max_upload_pixels: int):
        self.runs_dir = Path(runs_dir)
        self.max_n = max_n
        self.gate = JobGate(concurrency, queue)
        self.cache = m.ModelCache(cache_size)  # generators
        # Classifiers are used together (every condition of a run, side by side), so their cache is wider:
        # a run has 4 control conditions + 2 per generator; 4x keeps a typical run's set loaded (≈45 MB each).
        self.classifier_cache = m.ModelCache(4 * cache_size)
        self.max_upload_bytes, self.max_upload_pixels = max_upload_bytes, max_upload_pixels
        self._reports: dict[tuple[str, int], dict] = {}  # (run, manifest mtime) → report data
        self._report_lock = threading.Lock()  # matplotlib (used by gather) is not thread-safe

    def run(self, name: str) -> tuple[Path, dict]:
        run_dir = resolve_run(self.runs_dir, name)
        return run_dir, m.read_manifest(run_dir)

    def report(self, name: str) -> dict:
        from synthmed.report import gather

        run_dir, man = self.run(name)
        for stage in man.get("stages", []):  # gather follows the manifest's folders: keep them inside the run
            if (run_dir / stage["folder"]).exists():
                resolve_inside(run_dir, stage["folder"])
        key = (name, (run_dir / "manifest.json").stat().st_mtime_ns)
        with self._report_lock:
            if key not in self._reports:
                data = gather(run_dir)
                data.pop("manifest", None)  # served by GET /api/runs/{run}
                self._reports = {k: v for k, v in self._reports.items() if k[0] != name}
                self._reports[key] = plain(data)
            return self._reports[key]

    # -- model jobs (run in the gate's worker threads) --
    def generate(self, req: GenerateRequest) -> tuple[bytes, str, str]:
        """Sample ``req.n`` images → (body, media type, file name)."""
        from synthmed.imaging import make_grid, png_bytes

        run_dir, man = self.run(req.run)
        entry = m.find_generator(run_dir, man, req.generator)
        class_names = m.run_facts(man)["class_names"]
        k = m.resolve_class(class_names, req.class_)
        gen = m.load_generator_at(run_dir, entry, self.cache)
        opts = m.sample_options(gen)
        kwargs: dict[str, Any] = {"progress": False} if "progress" in opts else {}
        for knob in ("steps", "guidance"):
            value = getattr(req, knob)
            if value is not None:
                if knob not in opts:
                    raise SynthmedError(f"generator '{entry.id}' ({entry.family}) takes no {knob}; leave {knob} empty")
                kwargs[knob] = value
        images = gen.sample(np.full(req.n, k, dtype=np.int64), seed=req.seed, **kwargs)  # (n, H, W, C) uint8
        stem = _safe_filename(f"{req.run}_{entry.id}_{class_names[k]}_seed{req.seed}")
        if req.format == "zip":
            return images_to_zip(images, _safe_filename(class_names[k])), "application/zip", stem + ".zip"
        return png_bytes(make_grid(images)), "image/png", stem + ".png"

    def classify(self, name: str, data: bytes, wanted: list[str] | None) -> ClassifyResponse:
        run_dir, man = self.run(name)
        entries = m.find_classifiers(run_dir, man, wanted)
        facts = m.run_facts(man)
        shape = tuple(facts["image_shape"])
        x = upload_to_array(data, shape, max_bytes=self.max_upload_bytes, max_pixels=self.max_upload_pixels)
        results = []
        for e in entries:
            clf = m.load_classifier_at(run_dir, e, self.classifier_cache)
            p = clf.predict_proba(x)[0]
            names = list(clf.class_names)
            results.append({"id": e.id, "condition": e.condition, "generator": e.generator, "seed": e.seed,
                             "probabilities": {c: float(v) for c, v in zip(names, p)},
                             "predicted": names[int(np.argmax(p))]})
        return ClassifyResponse(run=name, image_shape=list(shape), class_names=facts["class_names"], results=results)


def create_app(runs_dir: Path, *, max_n: int = 256, concurrency: int = 2, queue: int = 8, cache_size: int = 4,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, max_upload_pixels: int = MAX_UPLOAD_PIXELS):
    """Build the web app over a folder of study runs (read-only).

    Args:
        runs_dir: folder whose sub-folders are runs written by ``synthmed run``.
        max_n: most images one generate request may ask for.
        concurrency: model jobs (sampling, classifying) run at once, each in a worker thread.
        queue: jobs that may wait for a worker; more get 429 with Retry-After.
        cache_size: loaded generators kept in the LRU cache (classifiers: 4 × this, as a run's
            conditions are classified together).
        max_upload_bytes: largest accepted upload (413 beyond).
        max_upload_pixels: largest accepted image, width × height, checked before decoding (413 beyond).

    Returns:
        A FastAPI app; run it with ``uvicorn.run(app, host="127.0.0.1", port=8000)``.
    """
    configure_torch_cpu()
    state = ServeState(Path(runs_dir), max_n=max_n, concurrency=concurrency, queue=queue, cache_size=cache_size,
                       max_upload_bytes=max_upload_bytes, max_upload_pixels=max_upload_pixels)
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        state.gate.close()

    app = FastAPI(lifespan=lifespan, title="synthmed", version="1", description="Browse study runs, generate synthetic images, "
                  "classify an uploaded image with a run's classifiers. Read-only over the runs folder.")
    app.state.synthmed = state

    @app.exception_handler(SynthmedError)
    async def _synthmed_error(request: Request, exc: SynthmedError):
        status = 404 if isinstance(exc, NotFoundError) else 413 if isinstance(exc, UploadTooLargeError) else \
            429 if isinstance(exc, BusyError) else 400
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, BusyError) else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        if request.url.path == "/api/classify":  # refuse an oversized upload before reading its body
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_upload_bytes + 64 * 1024:  # + room for the form fields
                return JSONResponse({"detail": f"upload is {length} bytes; the limit is {max_upload_bytes} bytes"
                                               " — send a smaller image"}, status_code=413)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health", response_model=Health)
    async def health():
        return Health(status="ok", runs=len(list_run_folders(state.runs_dir)), running=state.gate.running,
                      queued=state.gate.waiting, cached_models=len(state.cache) + len(state.classifier_cache))

    @app.get("/api/runs", response_model=list[RunSummary])
    async def runs():
        return [run_summary(name, path) for name, path in list_run_folders(state.runs_dir).items()]

    @app.get("/api/runs/{run}")
    async def run_detail(run: str) -> dict[str, Any]:
        """The run's manifest and its tidy results table (dataset × generator × condition × seed × metric)."""
        run_dir, man = state.run(run)
        results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else []
        return plain({"name": run, "manifest": man, "results": results})

    @app.get("/api/runs/{run}/report")
    async def run_report(run: str) -> dict[str, Any]:
        """The report's data: summaries per metric, fidelity, generators with sample grids (PNG data URIs)."""
        return await asyncio.to_thread(state.report, run)

    @app.get("/api/runs/{run}/generators", response_model=list[GeneratorInfo])
    async def generators(run: str):
        _, man = state.run(run)
        facts = m.run_facts(man)
        out = []
        for g in m.run_generators(man):
            opts = m.family_sample_options(g.family)
            out.append(GeneratorInfo(id=g.id, label=g.label, family=g.family, seed=g.seed, classes=facts["class_names"],
                                     image_shape=facts["image_shape"], options=sorted(opts),
                                     defaults=_gen_defaults(g, opts)))
        return out

    @app.get("/api/runs/{run}/classifiers", response_model=list[ClassifierInfo])
    async def classifiers(run: str):
        _, man = state.run(run)
        return [ClassifierInfo(id=c.id, condition=c.condition, generator=c.generator, seed=c.seed)
                for c in m.run_classifiers(man)]

    @app.post("/api/generate", response_class=Response,
              responses={200: {"content": {"image/png": {}, "application/zip": {}},
                               "description": "a PNG grid (format=png) or a zip of PNGs (format=zip)"},
                         404: {"description": "unknown run, generator or class"}, 429: {"description": "busy"}})
    async def generate(req: GenerateRequest):
        if req.n > state.max_n:
            raise SynthmedError(f"n={req.n} is above this server's limit of {state.max_n} images; ask for fewer")
        run_dir, man = state.run(req.run)  # 404s are answered before queueing
        m.find_generator(run_dir, man, req.generator)
        m.resolve_class(m.run_facts(man)["class_names"], req.class_)
        body, media, filename = await state.gate.run(state.generate, req)
        return Response(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{filename}"', "X-Images": str(req.n)})

    @app.post("/api/classify", response_model=ClassifyResponse,
              responses={404: {"description": "unknown run or condition"}, 413: {"description": "upload too large"},
                         400: {"description": "not a PNG/JPEG image"}, 429: {"description": "busy"}})
    async def classify(file: UploadFile = File(..., description="a PNG or JPEG image, any size"),
                       run: str = Form(..., description="a run name from GET /api/runs"),
                       conditions: list[str] | None = Form(None, description="conditions or classifier ids; "
                                                           "none = every classifier of the run's first seed")):
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise UploadTooLargeError(f"upload is over {max_upload_bytes} bytes; send a smaller image")
        run_dir, man = state.run(run)
        m.find_classifiers(run_dir, man, conditions)
        return await state.gate.run(state.classify, run, data, conditions)

    return app
