"""Matplotlib figures for the report, returned as PNG bytes (Agg backend, no display needed)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def fig_to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    cols = {}
    for k in rows[0]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[k]))
            except (TypeError, ValueError):
                vals.append(np.nan)
        cols[k] = np.asarray(vals)
    return cols


def loss_curves(metrics_csv: Path, title: str, smooth: int = 20) -> bytes | None:
    """One panel per logged scalar (Loss_D, Loss_G, D(x), D(G(z)), KL, ε-MSE ...), moving-average smoothed."""
    if not metrics_csv.exists():
        return None
    cols = read_csv_columns(metrics_csv)
    steps = cols.pop("step", None)
    keys = [k for k, v in cols.items() if np.isfinite(v).any()]
    if steps is None or not keys:
        return None
    plt = _plt()
    n = len(keys)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.6 * nrow), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        v = cols[k]
        ax.plot(steps, v, alpha=0.3, lw=0.8)
        if len(v) > smooth:
            kernel = np.ones(smooth) / smooth
            ax.plot(steps[smooth - 1 :], np.convolve(np.nan_to_num(v), kernel, mode="valid"), lw=1.5)
        ax.set_title(k, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig_to_png(fig)


def metric_bars(summary: list[dict], metric: str, title: str) -> bytes | None:
    """Mean ± 95 % CI per condition (controls first, then each generator's conditions)."""
    if not summary:
        return None
    plt = _plt()
    labels = [s["condition"] if s["generator"] == "-" else f"{s['condition']}\n({s['generator']})" for s in summary]
    means = np.array([s["mean"] for s in summary])
    lo = np.array([s["mean"] - (s.get("ci_low") if s.get("ci_low") is not None else s["mean"]) for s in summary])
    hi = np.array([(s.get("ci_high") if s.get("ci_high") is not None else s["mean"]) - s["mean"] for s in summary])
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(summary)), 3.4))
    colors = ["#888888" if s["generator"] == "-" else "#3b75af" for s in summary]
    ax.bar(range(len(summary)), means, yerr=[lo, hi], color=colors, capsize=3)
    ax.set_xticks(range(len(summary)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    lo_y = max(0.0, float(np.nanmin(means - lo)) - 0.05)
    ax.set_ylim(lo_y, min(1.0, float(np.nanmax(means + hi)) + 0.05))
    fig.tight_layout()
    return fig_to_png(fig)


def utility_curve(curve: dict) -> bytes | None:
    """Gain over the best control at each ratio of the sweep, one line per generator (CI at its Holm level)."""
    points = curve.get("points") or []
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    gens = curve["generators"]
    for j, gen in enumerate(gens):
        pts = sorted((p for p in points if p["generator"] == gen), key=lambda p: p["ratio"])
        x = np.array([p["ratio"] for p in pts]) * (1 + 0.04 * (j - (len(gens) - 1) / 2))  # side by side, not on top
        y = np.array([p["gain"] for p in pts])
        lo = np.array([p["gain"] - p["ci_low"] if p["ci_low"] is not None else 0.0 for p in pts])
        hi = np.array([p["ci_high"] - p["gain"] if p["ci_high"] is not None else 0.0 for p in pts])
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=gen)
    ax.axhline(0.0, color="#888888", lw=1, ls="--")
    ax.set_xscale("log")
    ratios = curve["ratios"]
    ax.set_xticks(ratios, [f"{r:g}" for r in ratios])
    ax.minorticks_off()
    ax.set_xlabel("synthetic images per real image (r)")
    ax.set_ylabel(f"{curve['metric']} gain over best control")
    ax.set_title(f"{curve['usage']}: gain over the best control at each ratio", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig_to_png(fig)


def per_class_f1(rows: list[dict], class_names: list[str]) -> bytes | None:
    """Grouped bars: per-class F1 (mean over seeds) for every (generator, condition)."""
    groups: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["metric"].startswith("f1["):
            label = r["condition"] if r["generator"] == "-" else f"{r['condition']} ({r['generator']})"
            groups.setdefault(label, {}).setdefault(r["metric"][3:-1], []).append(r["value"])
    if not groups:
        return None
    plt = _plt()
    names = list(groups)
    width = 0.8 / max(len(class_names), 1)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names)), 3.4))
    for i, c in enumerate(class_names):
        vals = [np.mean(groups[n].get(c, [np.nan])) for n in names]
        ax.bar(np.arange(len(names)) + i * width, vals, width, label=c)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("Per-class F1 (mean over seeds)", fontsize=10)
    fig.tight_layout()
    return fig_to_png(fig)


def progression_strip(grid_pngs: list[Path], max_frames: int = 4) -> bytes | None:
    """Training progression: up to ``max_frames`` evenly spaced fixed-noise grids, side by side."""
    if not grid_pngs:
        return None
    from PIL import Image

    idx = np.unique(np.linspace(0, len(grid_pngs) - 1, min(max_frames, len(grid_pngs))).round().astype(int))
    frames = [grid_pngs[i] for i in idx]
    plt = _plt()
    fig, axes = plt.subplots(len(frames), 1, figsize=(6, 1.6 * len(frames)), squeeze=False)  # one frame per row
    for ax, p in zip(axes.flat, frames):
        ax.imshow(np.asarray(Image.open(p).convert("RGB")), interpolation="nearest")
        ax.set_ylabel(f"step {p.stem.rsplit('_', 1)[-1].lstrip('0') or '0'}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("fixed-noise samples across training (step)", fontsize=9)
    fig.tight_layout()
    return fig_to_png(fig)


def real_vs_generators(real: tuple[np.ndarray, np.ndarray], fakes: dict[str, tuple[np.ndarray, np.ndarray]],
                       class_names: list[str], per_class: int = 6) -> bytes:
    """One row per class; columns: real examples, then each generator's samples of that class."""
    plt = _plt()
    sources = {"real": real, **fakes}
    fig, axes = plt.subplots(len(class_names), len(sources), figsize=(2.2 * len(sources), 1.0 + 0.7 * len(class_names) * max(1, per_class // 6 + 1)),
                             squeeze=False)
    from synthmed.imaging import make_grid

    for r, cname in enumerate(class_names):
        for c, (src, (imgs, labels)) in enumerate(sources.items()):
            sel = imgs[labels == r][:per_class]
            ax = axes[r, c]
            if len(sel):
                g = make_grid(sel, nrow=3)
                ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray" if g.shape[-1] == 1 else None,
                          interpolation="nearest", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(src, fontsize=9)
            if c == 0:
                ax.set_ylabel(cname, fontsize=9)
    fig.tight_layout()
    return fig_to_png(fig)
