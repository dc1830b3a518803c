"""Shared fixtures: the real data slice in $SYNTHMED_DATA_DIR (default ../shared/data) and tiny tensors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# The suite never reaches the internet: a missing dataset file fails with its one-line message instead
# of a download. Download tests clear this and serve files from a local HTTP server (tests/unit/test_data_download.py).
os.environ.setdefault("SYNTHMED_OFFLINE", "1")


def real_data_dir() -> Path:
    return Path(os.environ.get("SYNTHMED_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = real_data_dir()
    if not (d / "pneumoniamnist.npz").exists():
        pytest.skip(f"real data not found: set SYNTHMED_DATA_DIR to a folder holding pneumoniamnist.npz (looked in {d})")
    return d


@pytest.fixture(scope="session")
def pneumonia_50shot(data_dir):
    """The real PneumoniaMNIST 50-shot train split (seed 0) plus the official val/test, as LabeledImages.

    Made by the data layer itself: official protocol, duplicates shared with train removed from val.
    Returns a dict with keys train, val, test (LabeledImages).
    """
    from synthmed.data import load_dataset, make_split

    data = load_dataset("pneumoniamnist", data_dir=data_dir)
    parts = make_split(data, shots=50, seed=0).apply(data)
    return {k: parts[k] for k in ("train", "val", "test")}


@pytest.fixture
def tiny_images():
    """8 random 28x28 grey images in 2 classes (uint8 NHWC) — for unit tests."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8)
    labels = np.array([0, 1] * 4, dtype=np.int64)
    return images, labels


@pytest.fixture
def browser_page():
    """A Playwright page in headless Chromium (Debian's package; no browser download).

    Skips with install instructions when no Chromium is present. ``page.console_errors`` collects
    console errors and uncaught page errors.
    """
    from tests_browser import browser_page as _page

    with _page() as page:
        yield page


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_dir):
    """One real smoke-profile study run (cgan + cvae, every condition, fidelity, memorization, report),
    shared by every test that needs a finished run folder. Returns (run_dir, config, manifest).
    One thread per stage, in order: test_local_workers.py re-runs it side by side and compares bit for bit."""
    from synthmed.study import load_study_config, run_study

    out = tmp_path_factory.mktemp("smoke") / "run"
    cfg = load_study_config(profile="smoke")
    manifest = run_study(cfg, out, data_dir=str(data_dir), progress=False, threads=1)
    return out, cfg, manifest


@pytest.fixture
def one_torch_thread():
    """Run a test with one intra-op torch thread (restored after). Tiny nets gain nothing from
    threads, and on the shared 2-core CPU spin-waiting threads made one tiny DDPM test ~40x slower
    (0.9 s with 1 thread vs 42 s with 2, measured at load average 10)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def torch_single_thread():
    """Run a test with one torch CPU thread (restored after).

    On this shared 2-core machine, tiny-net tests with 2 OpenMP threads spend most of their time
    waiting on each other when other processes hold the cores (measured: >10x slower under load 19).
    Opt in with ``pytestmark = pytest.mark.usefixtures("torch_single_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
