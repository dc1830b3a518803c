"""The FastAPI app: browse study runs, generate images on demand, classify an uploaded image.

Read-only over ``runs_dir``. Routes (the schema is at ``/openapi.json``; the interactive ``/docs`` and
``/redoc`` pages are off because they load their scripts from a CDN, which the page's CSP forbids):

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
import math
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

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
from synthmed.serve.domain import DomainReferences
from synthmed.serve.security import (
    BrokenRunError,
    NotFoundError,
    UploadTooLargeError,
    links_leaving,
    list_run_folders,
    read_json_inside,
    resolve_inside,
    resolve_run,
    upload_to_array,
)
from synthmed.utils.runtime import configure_torch_cpu

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 8 * 2**20  # 8 MiB: a full-resolution chest X-ray PNG or a phone JPEG fits
MAX_UPLOAD_PIXELS = 25_000_000  # 25 MP: any phone photo; a decompression bomb is refused before decoding
MAX_FORM_OVERHEAD = 64 * 1024  # multipart boundaries + the run/conditions fields beside the file
MAX_JSON_BODY = 64 * 1024  # a generate request is ~200 bytes; anything near this is not one
# Same-origin only and no remote hosts: the page must work offline, and this enforces it in the browser.
# frame-ancestors 'none' (+ X-Frame-Options for old browsers): no other site may frame the page (clickjacking).
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-resource-policy", b"same-origin")]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


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
    except BrokenRunError:
        return RunSummary(name=name, status="unreadable", stages_done=stages_done)
    ds = man.get("config", {}).get("dataset", {})
    return RunSummary(name=name, study=man.get("study"), dataset=f"{ds.get('name')}_{ds.get('size')}",
                      date=man.get("finished_at"), status="finished", stages_done=stages_done,
                      generators=len(m.run_generators(man)), classifiers=len(m.run_classifiers(man)))


def _gen_defaults(entry: m.GeneratorEntry, options: set[str]) -> dict[str, Any]:
    names = {"steps": "sample_steps", "guidance": "guidance", "sampler": "sampler"}  # knob -> the trained config's key
    return {k: entry.config[names[k]] for k in sorted(options) if names.get(k) in entry.config}


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
    """Everything one app instance holds: the runs folder, limits, the job gate and the model caches."""

    def __init__(self, runs_dir: Path, *, max_n: int, concurrency: int, queue: int, cache_size: int,
                 max_upload_bytes: int, max_upload_pixels: int, data_dir: str | None = None):
        self.runs_dir = Path(runs_dir)
        self.max_n = max_n
        self.gate = JobGate(concurrency, queue)
        self.cache = m.ModelCache(cache_size)  # generators
        # Classifiers are used together (every condition of a run, side by side), so their cache is wider:
        # a run has 4 control conditions + 2 per generator; 4x keeps a typical run's set loaded (≈45 MB each).
        self.classifier_cache = m.ModelCache(4 * cache_size)
        self.max_upload_bytes, self.max_upload_pixels = max_upload_bytes, max_upload_pixels
        self.domains = DomainReferences(data_dir)
        self._reports: dict[tuple[str, int], dict] = {}  # (run, manifest mtime) → report data
        self._report_lock = threading.Lock()  # matplotlib (used by gather) is not thread-safe

    def run(self, name: str) -> tuple[Path, dict]:
        run_dir = resolve_run(self.runs_dir, name)
        return run_dir, m.read_manifest(run_dir)

    def results(self, name: str) -> list:
        run_dir, _ = self.run(name)
        return read_json_inside(run_dir, "results.json", list) if (run_dir / "results.json").exists() else []

    def report(self, name: str) -> dict:
        run_dir, man = self.run(name)
        key = (name, (run_dir / "manifest.json").stat().st_mtime_ns)
        with self._report_lock:
            if key not in self._reports:
                data = self._gather(run_dir, man)
                data.pop("manifest", None)  # served by GET /api/runs/{run}
                self._reports = {k: v for k, v in self._reports.items() if k[0] != name}
                self._reports[key] = plain(data)
            return self._reports[key]

    @staticmethod
    def _gather(run_dir: Path, man: dict) -> dict:
        """The report's data; every file it reads must lie inside the run (checked before reading)."""
        from synthmed.report import gather

        for stage in man.get("stages", []):  # gather follows the manifest's folders: keep them inside the run
            if (run_dir / stage["folder"]).exists():
                resolve_inside(run_dir, stage["folder"])
        outside = links_leaving(run_dir, run_dir)
        if outside:
            raise BrokenRunError(f"run '{run_dir.name}' has links that point outside it ({', '.join(outside[:3])}); "
                                 "the app does not follow them — replace them with the files themselves")
        try:
            return gather(run_dir)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:  # a damaged stage file
            raise BrokenRunError(f"run '{run_dir.name}': a stage file is damaged ({type(e).__name__}); "
                                 "re-run 'synthmed run' on it to rewrite it") from None

    # -- model jobs (run in the gate's worker threads) --
    def generate(self, req: GenerateRequest) -> tuple[bytes, str, str]:
        """Sample ``req.n`` images → (body, media type, file name)."""
        from synthmed.imaging import make_grid, png_bytes

        run_dir, man = self.run(req.run)
        entry = m.find_generator(run_dir, man, req.generator)
        class_names = m.run_facts(man)["class_names"]
        k = m.resolve_class(class_names, req.class_)
        gen = m.load_generator_at(run_dir, entry, self.cache)
        images = gen.sample(np.full(req.n, k, dtype=np.int64), seed=req.seed, **self._knobs(gen, entry, req))
        stem = _safe_filename(f"{req.run}_{entry.id}_{class_names[k]}_seed{req.seed}")
        if req.format == "zip":
            return images_to_zip(images, _safe_filename(class_names[k])), "application/zip", stem + ".zip"
        return png_bytes(make_grid(images)), "image/png", stem + ".png"

    @staticmethod
    def _knobs(gen, entry: m.GeneratorEntry, req: GenerateRequest) -> dict[str, Any]:
        opts = m.sample_options(gen)
        kwargs: dict[str, Any] = {"progress": False} if "progress" in opts else {}
        for knob in m.SAMPLE_OPTIONS:
            value = getattr(req, knob)
            if value is not None:
                if knob not in opts:
                    raise SynthmedError(f"generator '{entry.id}' ({entry.family}) takes no {knob}; leave {knob} empty")
                kwargs[knob] = value
        return kwargs

    def classify(self, name: str, data: bytes, wanted: list[str] | None) -> ClassifyResponse:
        run_dir, man = self.run(name)
        entries = m.find_classifiers(run_dir, man, wanted)
        facts = m.run_facts(man)
        shape = tuple(facts["image_shape"])
        warnings: list[str] = []
        x = upload_to_array(data, shape, max_bytes=self.max_upload_bytes, max_pixels=self.max_upload_pixels,
                            notes=warnings)
        results = []
        for e in entries:
            clf = m.load_classifier_at(run_dir, e, self.classifier_cache)
            p = clf.predict_proba(x)[0]
            names = list(clf.class_names)
            results.append({"id": e.id, "condition": e.condition, "generator": e.generator, "seed": e.seed,
                             "probabilities": {c: float(v) for c, v in zip(names, p)},
                             "predicted": names[int(np.argmax(p))]})
        warnings += self._domain_warning(run_dir, man, entries, x)
        return ClassifyResponse(run=name, image_shape=list(shape), class_names=facts["class_names"], results=results,
                                warnings=warnings)

    def _domain_warning(self, run_dir: Path, man: dict, entries: list[m.ClassifierEntry], x: np.ndarray) -> list[str]:
        """The distance check with the real-data classifier among ``entries`` (else the first one)."""
        e = next((c for c in entries if c.condition == "real"), entries[0])
        clf = m.load_classifier_at(run_dir, e, self.classifier_cache)
        ref = self.domains.get(f"{run_dir}/{e.folder}", run_dir, man, clf, e.seed)
        note = ref if isinstance(ref, str) else ref.note(clf, x)
        return [note] if note else []


def allowed_hosts(host: str | None) -> list[str]:
    """Host header values the app answers (anything else: 400, which stops DNS-rebinding pages).

    Loopback names always; the bound host when it is a name or address; for a wildcard bind
    (0.0.0.0 / ::) this machine's host names and addresses. ``SYNTHMED_ALLOWED_HOSTS`` (comma
    separated) adds more, e.g. the name a reverse proxy forwards.
    """
    import os
    import socket

    hosts = list(LOOPBACK_HOSTS)
    if host and host not in ("0.0.0.0", "::"):
        hosts.append(f"[{host}]" if ":" in host else host)
    elif host:
        names = {socket.gethostname(), socket.getfqdn()}
        with contextlib.suppress(OSError):
            names |= {str(a[4][0]) for a in socket.getaddrinfo(socket.gethostname(), None)}
        hosts += [f"[{h}]" if ":" in h else h for h in sorted(names)]
    hosts += [h.strip() for h in os.environ.get("SYNTHMED_ALLOWED_HOSTS", "").split(",") if h.strip()]
    return hosts


class SecurityHeaders:
    """ASGI wrapper that adds ``SECURITY_HEADERS`` to every response — the 500s that Starlette's
    outermost error middleware writes included, which an ``@app.middleware`` function never sees."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in SECURITY_HEADERS
                                                                           if h[0] not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SynthmedAPI(FastAPI):
    """FastAPI whose whole stack (error pages included) sits inside the host check and the headers."""

    allowed_hosts: list[str] = list(LOOPBACK_HOSTS)

    def build_middleware_stack(self):
        return SecurityHeaders(TrustedHostMiddleware(super().build_middleware_stack(), self.allowed_hosts))


def _status_of(exc: SynthmedError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UploadTooLargeError):
        return 413
    if isinstance(exc, BusyError):
        return 429
    return 409 if isinstance(exc, BrokenRunError) else 400


def _add_error_handlers(app: FastAPI, max_upload_bytes: int) -> None:
    @app.exception_handler(SynthmedError)
    async def _synthmed_error(request: Request, exc: SynthmedError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, BusyError) else None
        return JSONResponse({"detail": str(exc)}, status_code=_status_of(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # FastAPI's default echoes each bad input (a 50 MB body came back whole; NaN made it a 500): not here
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "type": e.get("type")}
                  for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 413:  # FastAPI's body limit: say what the limit is
            limit = max_upload_bytes if request.url.path == "/api/classify" else MAX_JSON_BODY
            detail = f"request body is too large: the limit is {limit} bytes — send a smaller image or request"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _add_length_check(app: FastAPI, max_upload_bytes: int) -> None:
    """Refuse a body whose Content-Length is over the route's limit before reading any of it, in words.
    (FastAPI's ``max_body_size`` also counts bodies without a length while they stream in.)"""

    @app.middleware("http")
    async def _length(request: Request, call_next):
        upload = request.url.path == "/api/classify"
        limit = max_upload_bytes + MAX_FORM_OVERHEAD if upload else MAX_JSON_BODY
        length = request.headers.get("content-length", "")
        if length.isascii() and length.isdecimal() and int(length) > limit:
            what = f"the upload limit is {max_upload_bytes} bytes — send a smaller image" if upload else \
                f"the limit is {limit} bytes for this request"
            return JSONResponse({"detail": f"request body is {length} bytes; {what}"}, status_code=413)
        return await call_next(request)


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    async def docs():
        return JSONResponse({"detail": "the interactive API docs are off (they load scripts from a CDN, which this "
                                       "offline app does not allow); the schema is at /openapi.json"},
                            status_code=404)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _add_run_routes(app: FastAPI, state: ServeState) -> None:
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
        _, man = state.run(run)
        return plain({"name": run, "manifest": man, "results": state.results(run)})

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


def _add_model_routes(app: FastAPI, state: ServeState) -> None:
    @app.post("/api/generate", response_class=Response, max_body_size=MAX_JSON_BODY,
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

    limit = state.max_upload_bytes

    @app.post("/api/classify", response_model=ClassifyResponse, max_body_size=limit + MAX_FORM_OVERHEAD,
              responses={404: {"description": "unknown run or condition"}, 413: {"description": "upload too large"},
                         400: {"description": "not a PNG/JPEG image"}, 429: {"description": "busy"}})
    async def classify(file: UploadFile = File(..., description="a PNG or JPEG image, any size"),
                       run: str = Form(..., description="a run name from GET /api/runs"),
                       conditions: list[str] | None = Form(None, description="conditions or classifier ids; "
                                                           "none = every classifier of the run's first seed")):
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise UploadTooLargeError(f"upload is over {limit} bytes; send a smaller image")
        run_dir, man = state.run(run)
        m.find_classifiers(run_dir, man, conditions)
        return await state.gate.run(state.classify, run, data, conditions)


def create_app(runs_dir: Path, *, max_n: int = 256, concurrency: int = 2, queue: int = 8, cache_size: int = 4,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, max_upload_pixels: int = MAX_UPLOAD_PIXELS,
               host: str | None = "127.0.0.1", data_dir: str | None = None):
    """Build the web app over a folder of study runs (read-only).

    Args:
        runs_dir: folder whose sub-folders are runs written by ``synthmed run``.
        max_n: most images one generate request may ask for.
        concurrency: model jobs (sampling, classifying) run at once, each in a worker thread.
        queue: jobs that may wait for a worker; more get 429 with Retry-After.
        cache_size: loaded generators kept in the LRU cache (classifiers: 4 × this, as a run's
            conditions are classified together).
        max_upload_bytes: largest accepted upload (413 beyond, counted while it streams in).
        max_upload_pixels: largest accepted image, width × height, checked before decoding (413 beyond).
        host: the address the server binds; with loopback names it makes the Host headers answered
            (see ``allowed_hosts``).
        data_dir: where the runs' datasets live, for the upload's distance-to-training check
            (None: ``$SYNTHMED_DATA_DIR``).

    Returns:
        A FastAPI app; run it with ``uvicorn.run(app, host="127.0.0.1", port=8000)``.
    """
    configure_torch_cpu()
    state = ServeState(Path(runs_dir), max_n=max_n, concurrency=concurrency, queue=queue, cache_size=cache_size,
                       max_upload_bytes=max_upload_bytes, max_upload_pixels=max_upload_pixels, data_dir=data_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        state.gate.close()

    app = SynthmedAPI(lifespan=lifespan, title="synthmed", version="1", docs_url=None, redoc_url=None,
                      description="Browse study runs, generate synthetic images, classify "
                      "an uploaded image with a run's classifiers. Read-only over the runs folder.")
    app.allowed_hosts = allowed_hosts(host)
    app.state.synthmed = state
    _add_error_handlers(app, max_upload_bytes)
    _add_length_check(app, max_upload_bytes)
    _add_page_routes(app)
    _add_run_routes(app, state)
    _add_model_routes(app, state)
    return app
