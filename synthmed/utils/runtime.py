"""Devices, seeding and the provenance facts every manifest records."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import subprocess
from pathlib import Path

import numpy as np

MANIFEST_PACKAGES = (
    "synthmed", "torch", "torchvision", "numpy", "scikit-learn", "medmnist",
    "diffusers", "torchmetrics", "torch-fidelity", "pydantic", "scipy", "pillow",
)


def resolve_device(device: str = "auto"):
    """``"auto"`` → CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run on CPU repeats bit for bit."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def configure_torch_cpu() -> None:
    """CPU settings that matter here: flush denormals (an untrained UNet/GAN hits them and runs
    several times slower without this)."""
    import torch

    torch.set_flush_denormal(True)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in MANIFEST_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit of the synthmed source tree (None when not in a git checkout)."""
    path = Path(path) if path else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
