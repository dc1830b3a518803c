"""What every stage function shares: the run-wide context and reading an input stage's outputs.

A stage function has the signature ``run(stage, folder, inputs, ctx) -> record``: ``inputs`` maps input
names to finished stage folders, ``ctx`` carries run-wide, non-hashed settings. It writes its outputs
into ``folder`` atomically and returns a small JSON-able record (stored in ``stage.json`` by the
runner). Each stage kind is one module of this package: its pydantic ``Config`` (what the stage key
hashes), its ``run`` function and the reusable core that the CLI commands call as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from synthmed import runs
from synthmed.config import validate
from synthmed.data.types import LabeledImages
from synthmed.runs.layout import SAMPLES_FILE

C = TypeVar("C", bound=BaseModel)


@dataclass(frozen=True)
class StageContext:
    data_dir: str | None = None  # where offline datasets live (not hashed: it does not change content)
    progress: bool = True  # show per-stage progress bars
    tensorboard: bool = True
    threads: int | None = None  # torch CPU threads per stage; None = torch's default (one per core)


def stage_config(model: type[C], stage) -> C:
    """The stage's typed config (its JSON form is what the stage key hashes)."""
    return validate(model, stage.config, source=f"stage '{stage.name}' config")


def load_split_sets(split_folder: Path, ctx: StageContext) -> tuple[dict[str, LabeledImages], dict[str, Any]]:
    """Reload the dataset named in a split stage and apply its manifest → {train, val, test, train_pool}."""
    return runs.load_split_sets(split_folder, ctx.data_dir)


def load_samples(samples_folder: Path, class_names: tuple[str, ...]) -> LabeledImages:
    with np.load(samples_folder / SAMPLES_FILE) as z:
        return LabeledImages(images=z["images"], labels=z["labels"].astype(np.int64), class_names=class_names,
                             name="synthetic")
