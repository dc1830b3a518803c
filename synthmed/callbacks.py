"""One event stream for training progress.

Training loops emit scalars and image grids through callbacks; the progress bar, the TensorBoard
writer, the CSV logger and the grid saver subscribe. Loops contain no ``print`` and no
``if tensorboard:`` branches.

Events:
    on_train_begin(total_steps, info)       once, before the first step
    on_step(step, scalars)                  every optimiser step; scalars: {"loss_d": 0.7, ...}
    on_grid(step, grid, tag)                a (H, W, C) uint8 image grid (e.g. one row per class)
    on_train_end(info)                      once, after the last step (also after a clean stop)
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.imaging import save_png


class Callback:
    def on_train_begin(self, total_steps: int, info: dict[str, Any]) -> None: ...

    def on_step(self, step: int, scalars: dict[str, float]) -> None: ...

    def on_grid(self, step: int, grid: np.ndarray, tag: str) -> None: ...

    def on_train_end(self, info: dict[str, Any]) -> None: ...


class CallbackList(Callback):
    """Fans every event out to its members."""

    def __init__(self, callbacks: list[Callback] | Callback | None = None):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback) and not isinstance(callbacks, CallbackList):
            callbacks = [callbacks]
        elif isinstance(callbacks, CallbackList):
            callbacks = list(callbacks.callbacks)
        self.callbacks: list[Callback] = list(callbacks)

    def on_train_begin(self, total_steps, info):
        for c in self.callbacks:
            c.on_train_begin(total_steps, info)

    def on_step(self, step, scalars):
        for c in self.callbacks:
            c.on_step(step, scalars)

    def on_grid(self, step, grid, tag):
        for c in self.callbacks:
            c.on_grid(step, grid, tag)

    def on_train_end(self, info):
        for c in self.callbacks:
            c.on_train_end(info)


class History(Callback):
    """Keeps every scalar in memory (``history.rows``); handy in notebooks and tests."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []
        self.grids: list[tuple[int, str]] = []

    def on_step(self, step, scalars):
        self.rows.append({"step": step, **scalars})

    def on_grid(self, step, grid, tag):
        self.grids.append((step, tag))


class CSVLogger(Callback):
    """Appends one row per step to ``path``; columns are fixed by the first row (others are ignored)."""

    def __init__(self, path: str | os.PathLike, flush_every: int = 50):
        self.path = Path(path)
        self.flush_every = flush_every
        self._fh = None
        self._writer = None
        self._fields: list[str] | None = None

    def on_step(self, step, scalars):
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            exists = self.path.exists() and self.path.stat().st_size > 0
            self._fh = open(self.path, "a", newline="")
            self._fields = ["step", *scalars.keys()]
            self._writer = csv.DictWriter(self._fh, fieldnames=self._fields, extrasaction="ignore")
            if not exists:
                self._writer.writeheader()
        self._writer.writerow({"step": step, **scalars})
        if step % self.flush_every == 0:
            self._fh.flush()

    def on_train_end(self, info):
        if self._fh is not None:
            self._fh.close()
            self._fh = self._writer = None


class TensorBoardLogger(Callback):
    """Scalars and grids to TensorBoard (``tensorboard --logdir DIR``).

    A fresh attempt (``start_step`` 0) first deletes event files an earlier, killed attempt left in
    ``log_dir``, so TensorBoard shows one curve, not two. A resumed attempt keeps them (they hold the
    steps up to the checkpoint) and opens its writer with ``purge_step=start_step + 1``, which tells
    TensorBoard to drop the old attempt's events from that step on.
    """

    EVENT_GLOB = "events.out.tfevents.*"

    def __init__(self, log_dir: str | os.PathLike, prefix: str = ""):
        self.log_dir = Path(log_dir)
        self.prefix = prefix
        self._writer = None
        self._purge_step: int | None = None

    def on_train_begin(self, total_steps, info):
        start = int(info.get("start_step", 0))
        if start == 0:
            for stale in self.log_dir.glob(self.EVENT_GLOB):
                stale.unlink(missing_ok=True)
        self._purge_step = start + 1 if start else None  # the first step this attempt writes

    def _w(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir), purge_step=self._purge_step)
        return self._writer

    def on_step(self, step, scalars):
        w = self._w()
        for k, v in scalars.items():
            if v is not None and math.isfinite(float(v)):
                w.add_scalar(f"{self.prefix}{k}", float(v), step)

    def on_grid(self, step, grid, tag):
        self._w().add_image(f"{self.prefix}{tag}", grid, step, dataformats="HWC")

    def on_train_end(self, info):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


class GridSaver(Callback):
    """Writes every grid as ``<dir>/<tag>_<step:06d>.png`` (the training-progression figure)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def on_grid(self, step, grid, tag):
        save_png(self.directory / f"{tag}_{step:06d}.png", grid)


class ProgressBar(Callback):
    """A tqdm bar with ETA showing the latest scalars; quiet when ``enabled`` is False."""

    def __init__(self, desc: str = "train", enabled: bool = True, keys: list[str] | None = None):
        self.desc = desc
        self.enabled = enabled
        self.keys = keys
        self._bar = None
        self._last = 0

    def on_train_begin(self, total_steps, info):
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, desc=self.desc, leave=False, dynamic_ncols=True,
                             initial=int(info.get("start_step", 0)))
            self._last = int(info.get("start_step", 0))

    def on_step(self, step, scalars):
        if self._bar is None:
            return
        self._bar.update(step - self._last)
        self._last = step
        if step % 10 == 0:
            keys = self.keys or list(scalars)[:4]
            self._bar.set_postfix({k: f"{scalars[k]:.3g}" for k in keys if k in scalars}, refresh=False)

    def on_train_end(self, info):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def standard_callbacks(out_dir: str | os.PathLike | None, desc: str = "train", progress: bool = True,
                       tensorboard: bool = True) -> CallbackList:
    """CSV + TensorBoard + grid PNGs under ``out_dir`` (when given) plus a progress bar."""
    cbs: list[Callback] = [ProgressBar(desc, enabled=progress)]
    if out_dir is not None:
        out = Path(out_dir)
        cbs += [CSVLogger(out / "metrics.csv"), GridSaver(out / "grids")]
        if tensorboard:
            cbs.append(TensorBoardLogger(out / "tensorboard"))
    return CallbackList(cbs)
