"""Request and response bodies of the JSON API (they make the OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_STEPS = 250  # DDIM steps per request: 250 × n=256 is already minutes of CPU; more is a job, not a request
MAX_GUIDANCE = 20.0  # classifier-free guidance w; beyond ~10 images saturate, 20 leaves room for experiments
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed


class RunSummary(BaseModel):
    name: str
    study: str | None = None
    dataset: str | None = None  # "<name>_<size>", e.g. pneumoniamnist_28
    date: str | None = None  # finished_at (UTC, ISO 8601); None while running
    status: Literal["finished", "incomplete", "unreadable"]  # unreadable: a damaged manifest.json
    stages_done: int  # stage folders holding stage.json
    generators: int = 0
    classifiers: int = 0


class GeneratorInfo(BaseModel):
    id: str  # "<label>@<seed>", what POST /api/generate takes (the bare label means its first seed)
    label: str
    family: str
    seed: int | None
    classes: list[str]
    image_shape: list[int]  # (H, W, C)
    options: list[str]  # optional sampling knobs this generator takes: "sampler", "steps", "guidance", "bn_stats"
    defaults: dict[str, Any]  # the trained config's sample_steps / guidance, when it has them


class ClassifierInfo(BaseModel):
    id: str  # "<condition> [<generator>] seed <seed>"
    condition: str
    generator: str
    seed: int | None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    run: str = Field(..., description="a run name from GET /api/runs")
    generator: str = Field(..., description="a generator id from GET /api/runs/{run}/generators, e.g. 'cgan@0'")
    class_: str | int = Field(..., alias="class", description="class name or index")
    n: int = Field(16, ge=1, description="images to draw (at most the server's max_n, default 256)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="noise seed: same seed, same images")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="sampling steps (diffusion only)")
    guidance: float | None = Field(None, ge=0.0, le=MAX_GUIDANCE, allow_inf_nan=False,
                                   description="guidance scale w (diffusion only)")
    # the fast diffusion samplers only: "ddpm" walks every training timestep (1000), beyond MAX_STEPS
    sampler: Literal["ddim", "dpm-solver", "unipc"] | None = Field(None, description="diffusion sampler (diffusion only)")
    bn_stats: Literal["ema", "recompute"] | None = Field(
        None, description="GANs: the EMA generator's BatchNorm statistics, averaged in training or recomputed")
    format: Literal["png", "zip"] = Field("png", description="png: one grid image; zip: one PNG per image")


class ClassProbabilities(BaseModel):
    id: str
    condition: str
    generator: str
    seed: int | None
    probabilities: dict[str, float]  # class name → probability
    predicted: str


class ClassifyResponse(BaseModel):
    run: str
    image_shape: list[int]  # the size the upload was converted to (H, W, C)
    class_names: list[str]
    results: list[ClassProbabilities]
    # the upload is unlike the training images (colour vs grey, or far in the classifier's feature space)
    warnings: list[str] = []


class Health(BaseModel):
    status: Literal["ok"]
    runs: int
    running: int  # model jobs running now
    queued: int  # model jobs waiting for a worker
    cached_models: int
