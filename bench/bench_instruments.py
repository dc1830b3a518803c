"""Issue 12: the default study's instruments, old design vs new, on the same synthetic images.

For each generator's seed-s synthetic set in a finished run folder:

- NEW (read, not recomputed): what the study's ``fidelity`` stage wrote (``fidelity.json``): S (|H| images)
  vs the held-out reference R beside the floor H vs R at the same size, class faithfulness judged by the
  E-trained classifier beside the same figure on H, and the calibrated copy detector's flag rate beside its
  null rate α (measured on H).
- OLD (recomputed here with the old-design functions still in ``synthmed.metrics``, called exactly as the
  study's fidelity stage called them before commit c125de6, see ``git show c125de6^:synthmed/study/stages/
  fidelity.py``): ``fidelity.fidelity_report`` of all n synthetic images against the whole real training pool
  (``train_pool``), floor = ``real_floor`` n real vs n real drawn from that pool (``floor_seed=0``); and
  ``memorization.copy_report`` (ratio test d1 < d2/3 OR d1 ≤ the 1st percentile of the validation images'
  NN distance, in pixel and feature space) against the k-shot images, thresholds calibrated on ``val``.

Both sides use the same samples (the samples stage's ``samples.npz``), the same split (reloaded with
``synthmed.runs.load_split_sets``) and the same feature network (the run's extractor stage, trained on E),
so only the design differs. (The old study trained its extractor on the whole pool, H and R included:
defect 2 of issue 12; that part of the old design is not reproduced here.)

The old design measured no class faithfulness and reported no null rate; as a stand-in for the latter the
old detector is also run on H (new real images no model saw): its flag rate there is the old design's
false-positive rate on genuinely new images.

    python bench/bench_instruments.py --run /work/out/default5 [--seeds 0] [--no-write]

Writes the ``instruments-old-vs-new`` section of bench/RESULTS.md (and bench/out/instruments.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from _results import header, replace_section  # noqa: E402

SECTION = "instruments-old-vs-new"
OUT = REPO / "bench" / "out" / "instruments.json"
BIG = 2.0  # a change of more than this factor is listed for the closing note
RATIO_METRICS = ("fid", "precision", "recall")  # metrics both designs have, with a floor ratio
NAMES = {"fid": "FD", "precision": "precision", "recall": "recall"}


# -- pure logic (tested in tests/unit/test_bench_instruments.py) ----------------------------------------------


def change_factor(old: float | None, new: float | None) -> float | None:
    """How many times larger the larger of two non-negative numbers is: max(old/new, new/old).

    inf when exactly one is 0; 1 when both are 0; None when either is missing."""
    if old is None or new is None:
        return None
    if old == new:
        return 1.0
    lo, hi = sorted((abs(old), abs(new)))
    return math.inf if lo == 0 else hi / lo


def big_changes(rows: list[dict], factor: float = BIG) -> list[dict]:
    """The (generator, seed, quantity) whose old and new values differ by more than ``factor``.

    ``rows``: one dict per synthetic set with ``generator``, ``seed``, ``old`` and ``new``, each holding
    ``copy_rate`` and ``ratio`` = {metric: synthetic / floor}."""
    out = []
    for row in rows:
        if row["new"] is None:
            continue
        counts = [side.get("copy_count") for side in (row["old"], row["new"])]
        copy = "copy rate" + ("" if None in counts else " ({}/{} → {}/{} images)".format(*counts[0], *counts[1]))
        pairs = [(copy, row["old"]["copy_rate"], row["new"]["copy_rate"])]
        pairs += [(f"{NAMES[m]} floor ratio", row["old"]["ratio"].get(m), row["new"]["ratio"].get(m))
                  for m in RATIO_METRICS]
        for what, old, new in pairs:
            f = change_factor(old, new)
            if f is not None and f > factor:
                out.append({"generator": row["generator"], "seed": row["seed"], "quantity": what, "old": old,
                            "new": new, "factor": f, "direction": "old higher" if old > new else "new higher"})
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—" if x is None else ("∞" if x > 0 else "−∞")
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def generator_table(row: dict) -> str:
    """Markdown: old and new rows for one synthetic set."""
    cols = ["design", "reference (n)", "floor", "FD", "FD floor", "FD ratio", "precision (floor)", "recall (floor)",
            "coverage (floor)", "faithfulness bal. acc (floor)", "copy rate", "null rate"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name in ("old", "new"):
        d = row[name]
        if d is None:
            lines.append("| new | — | fidelity stage not finished | " + " | ".join(["—"] * (len(cols) - 3)) + " |")
            continue
        pf = lambda m: "—" if d["synthetic"].get(m) is None else \
            f"{_fmt(d['synthetic'][m])} ({_fmt(d['floor'].get(m))})"  # noqa: E731
        lines.append("| " + " | ".join([
            name, d["reference"], d["floor_design"], _fmt(d["synthetic"]["fid"]), _fmt(d["floor"]["fid"]),
            _fmt(d["ratio"].get("fid")), pf("precision"), pf("recall"), pf("coverage"),
            "— (not measured)" if d.get("faithfulness") is None else
            f"{_fmt(d['faithfulness'])} ({_fmt(d['faithfulness_floor'])})",
            _pct(d["copy_rate"]), d["null_rate_text"]]) + " |")
    return "\n".join(lines)


def changes_list(changes: list[dict]) -> str:
    if not changes:
        return f"- none: no copy rate or floor ratio changed by more than {BIG:g}×"
    return "\n".join(f"- {c['generator']} (seed {c['seed']}), {c['quantity']}: old {_fmt(c['old'])} → new "
                     f"{_fmt(c['new'])} ({_fmt(c['factor'])}×, {c['direction']})" for c in changes)


def roughness(images: np.ndarray) -> np.ndarray:
    """(N,) mean absolute difference between neighbouring pixels ([0, 1] intensities): low = smooth image."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    return (np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))) / 2


def _median_or_none(x: np.ndarray) -> float | None:
    return float(np.median(x)) if len(x) else None


# -- reading the run folder ----------------------------------------------------------------------------------


def find_stages(run: Path) -> dict[str, list[tuple[Path, dict]]]:
    """{kind: [(folder, stage record)]} of every finished stage in the run."""
    from synthmed.runs import STAGES_DIR, read_stage_record

    out: dict[str, list] = {}
    for stage_json in sorted((run / STAGES_DIR).glob("*/stage.json")):
        record = read_stage_record(stage_json.parent)
        out.setdefault(record["kind"], []).append((stage_json.parent, record))
    return out


def _labelled(stages, kind: str, **labels) -> tuple[Path, dict] | None:
    hits = [(f, r) for f, r in stages.get(kind, []) if all(r["labels"].get(k) == v for k, v in labels.items())]
    return hits[0] if hits else None


def new_numbers(fidelity_folder: Path) -> dict:
    """The numbers the study's fidelity stage wrote (nothing recomputed)."""
    from synthmed.runs.layout import FIDELITY_FILE

    f = json.loads((fidelity_folder / FIDELITY_FILE).read_text())
    fid, faith, memo = f["fidelity"], f["faithfulness"], f["memorization"]
    metrics = fid["metrics"]
    return {
        "stage": fidelity_folder.name, "reference": f"R ({fid['n_reference']})",
        "floor_design": f"H vs R, {fid['n_heldout']} vs {fid['n_reference']}; S = {fid['n_synthetic']}; k = {fid['k']}",
        "synthetic": {m: e["synthetic"] for m, e in metrics.items()},
        "floor": {m: e["floor"] for m, e in metrics.items()},
        "ratio": {m: e["ratio"] for m, e in metrics.items() if e.get("ratio") is not None},
        "floor_ratio_ci": {m: e["floor_ratio_ci"] for m, e in metrics.items() if e.get("floor_ratio_ci")},
        "faithfulness": faith["synthetic"]["balanced_accuracy"]["value"],
        "faithfulness_floor": faith["floor"]["balanced_accuracy"]["value"], "faithfulness_verdict": faith["verdict"],
        "copy_rate": memo["flag_rate"]["rate"], "copy_ci": memo["flag_rate"]["ci"], "null_rate": memo["null"]["rate"],
        "copy_count": [memo["flag_rate"]["count"], memo["flag_rate"]["n"]],
        "alpha": memo["alpha"], "train_copied": memo["train_copied"]["rate"],
        "null_rate_text": f"{_pct(memo['null']['rate'])} (α = {memo['alpha']:g}, on H)"}


def old_numbers(split_folder: Path, samples_folder: Path, extractor_folder: Path, data_dir: str | None) -> dict:
    """The old design, called as the fidelity stage called it before c125de6, on the same images and network."""
    from synthmed.metrics import features as F
    from synthmed.metrics import memorization as M
    from synthmed.metrics.fidelity import fidelity_report
    from synthmed.runs import load_split_sets
    from synthmed.study.stages.base import load_samples
    from synthmed.study.stages.extractor import load_extractor

    sets, _ = load_split_sets(split_folder, data_dir)
    names = tuple(sets["train"].class_names)
    synthetic = load_samples(samples_folder, names)
    extractor = load_extractor(extractor_folder)
    ref, train, val, held = sets["train_pool"], sets["train"], sets["val"], sets["heldout"]
    feats_ref = F.extract_features(extractor, ref.images)
    feats_fake, logits_fake = F.extract_features(extractor, synthetic.images, return_logits=True)
    rep = fidelity_report(feats_ref, ref.labels, feats_fake, synthetic.labels, fake_logits=logits_fake,
                          class_names=names, floor_seed=0, extractor=extractor)
    overall, floor = rep["overall"], rep["real_floor"]
    feats = {k: F.extract_features(extractor, s.images) for k, s in (("train", train), ("val", val), ("held", held))}

    def old_copy(images, labels, feats_q):  # the old stage's call, with the query set as a parameter
        return M.copy_report(images, labels, train.images, synthetic_feats=feats_q, train_feats=feats["train"],
                             heldout_images=val.images, heldout_feats=feats["val"], class_names=names,
                             extractor=extractor)

    report = old_copy(synthetic.images, synthetic.labels, feats_fake)
    memo, on_h = report.summary(), old_copy(held.images, held.labels, feats["held"]).summary()
    pixel_thr, rough = report.spaces["pixel"].threshold_flag, roughness(synthetic.images)
    parts = {f"{space}_{kind}": memo[space][key] for space in ("pixel", "feature")
             for kind, key in (("ratio", M.KEY_RATIO_COPY_FRACTION), ("threshold", M.KEY_THRESHOLD_COPY_FRACTION))}
    keys = ("fid", "kid_mean", "precision", "recall")
    return {
        "reference": f"train pool ({len(ref)})",
        "floor_design": f"pool vs pool, {floor['n']} vs {floor['n']}; S = {len(synthetic.images)} vs pool; "
                        f"k = {overall['k']}"
                        + (f" ({floor['note']})" if floor.get("note") else ""),
        "synthetic": {k: overall[k] for k in keys}, "floor": {k: floor[k] for k in keys},
        "ratio": {k: overall[k] / floor[k] for k in RATIO_METRICS if floor[k]},
        "is_mean": overall.get("is_mean"), "faithfulness": None, "faithfulness_floor": None,
        "copy_rate": memo[M.KEY_COPY_FRACTION], "copy_parts": parts,
        "copy_count": [memo[M.KEY_COPY_COUNT], memo[M.KEY_N_SYNTHETIC]],
        "copy_rate_on_heldout": on_h[M.KEY_COPY_FRACTION],
        "copy_parts_on_heldout": {f"{s}_{k}": on_h[s][key] for s in ("pixel", "feature")
                                  for k, key in (("ratio", M.KEY_RATIO_COPY_FRACTION),
                                                 ("threshold", M.KEY_THRESHOLD_COPY_FRACTION))},
        "thresholds": {s: memo[s][M.KEY_THRESHOLD] for s in ("pixel", "feature")},
        "n_heldout": len(held), "n_val": len(val),
        # smoothness (median per-image roughness) of the images the old pixel threshold flags vs the rest and H
        "roughness": {"flagged_by_pixel_threshold": _median_or_none(rough[pixel_thr]),
                      "synthetic_not_flagged": _median_or_none(rough[~pixel_thr]),
                      "heldout": _median_or_none(roughness(held.images)),
                      "k_shot": _median_or_none(roughness(train.images))},
        "null_rate_text": f"none reported ({_pct(on_h[M.KEY_COPY_FRACTION])} of H flagged)"}


def measure(run: Path, seeds: list[int], data_dir: str | None) -> list[dict]:
    from synthmed.runs import STAGES_DIR

    stages = find_stages(run)
    rows = []
    for seed in seeds:
        for samples_folder, rec in stages.get("samples", []):
            if rec["labels"].get("seed") != seed:
                continue
            gen = rec["labels"]["generator"]
            fid_stage = _labelled(stages, "fidelity", generator=gen, seed=seed)
            split_folder = run / STAGES_DIR / rec["inputs"]["split"]
            if fid_stage is not None:
                extractor_folder = run / STAGES_DIR / fid_stage[1]["inputs"]["extractor"]
            else:
                ext = _labelled(stages, "extractor", seed=seed)
                if ext is None:
                    print(f"{gen} seed {seed}: no finished extractor stage; skipped", flush=True)
                    continue
                extractor_folder = ext[0]
            print(f"{gen} seed {seed}: old design on {samples_folder.name} …", flush=True)
            rows.append({"generator": gen, "seed": seed, "samples": samples_folder.name,
                         "old": old_numbers(split_folder, samples_folder, extractor_folder, data_dir),
                         "new": None if fid_stage is None else new_numbers(fid_stage[0])})
    return rows


# -- writing -------------------------------------------------------------------------------------------------


def _parts_line(row: dict) -> str:
    o = row["old"]
    p, h = o["copy_parts"], o["copy_parts_on_heldout"]
    line = (f"Old copy rate {_pct(o['copy_rate'])} = OR of pixel ratio {_pct(p['pixel_ratio'])}, pixel threshold "
            f"{_pct(p['pixel_threshold'])}, feature ratio {_pct(p['feature_ratio'])}, feature threshold "
            f"{_pct(p['feature_threshold'])} (thresholds: 1st percentile of the {o['n_val']} val images' NN distance). "
            f"The old detector on H ({o['n_heldout']} new real images): {_pct(o['copy_rate_on_heldout'])} flagged "
            f"(pixel threshold {_pct(h['pixel_threshold'])}, feature threshold {_pct(h['feature_threshold'])}, "
            f"ratio tests {_pct(h['pixel_ratio'])} / {_pct(h['feature_ratio'])}). Roughness (median mean |neighbour "
            f"pixel difference|, lower = smoother): images flagged by the old pixel threshold "
            f"{_fmt(o['roughness']['flagged_by_pixel_threshold'])}, other synthetic images "
            f"{_fmt(o['roughness']['synthetic_not_flagged'])}, H {_fmt(o['roughness']['heldout'])}, "
            f"k-shot {_fmt(o['roughness']['k_shot'])}.")
    n = row["new"]
    if n is not None:
        line += (f" New: flag rate {_pct(n['copy_rate'])} (95 % CI {_pct(n['copy_ci'][0])}–{_pct(n['copy_ci'][1])}), "
                 f"k-shot images with a flagged copy {_pct(n['train_copied'])}; faithfulness verdict: "
                 f"{n['faithfulness_verdict']}; FD floor-ratio interval "
                 f"{_fmt(n['floor_ratio_ci']['fid'][0])}–{_fmt(n['floor_ratio_ci']['fid'][1])}.")
    return line


def render(rows: list[dict], changes: list[dict], command: str, run: Path) -> str:
    parts = ["## Instruments, old design vs new, on the same synthetic images (issue 12; bench/bench_instruments.py)\n",
             header(command), f"- run: `{run}`\n",
             "OLD = `fidelity_report` of all n synthetic images vs the whole train pool, floor = `real_floor` n vs n "
             "pool images (seed 0); `copy_report` (ratio d1 < d2/3 OR d1 ≤ 1st percentile of val's NN distance, "
             "pixel and feature space). NEW = the study's fidelity stage (`fidelity.json`, read, not recomputed): "
             "|H| synthetic vs R beside H vs R; ratio-test detector calibrated on H to α. Same samples, same split, "
             "same E-trained feature network; k = the precision/recall neighbourhood. Ratios are synthetic / floor "
             "(FD: lower is better; "
             "precision/recall: higher is better).\n"]
    for row in rows:
        parts += [f"### {row['generator']}, seed {row['seed']} (`{row['samples']}`)\n", generator_table(row), "",
                  _parts_line(row), ""]
    missing = [f"{r['generator']} seed {r['seed']}" for r in rows if r["new"] is None]
    if missing:
        parts.append(f"Fidelity stage not finished at the time of writing (old side only): {', '.join(missing)}.\n")
    parts.append(f"### Changes of more than {BIG:g}× (copy rate, floor ratios old/new)\n")
    parts.append(changes_list(changes) if len(missing) < len(rows)
                 else "- not computable yet: no fidelity stage finished")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a run folder with finished fidelity stages")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing RESULTS.md")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = measure(args.run, seeds, os.environ.get("SYNTHMED_DATA_DIR"))
    if not rows:
        raise SystemExit(f"{args.run}: no finished samples stage for seeds {seeds}; wait for the study to get there")
    changes = big_changes(rows)
    command = f"python bench/bench_instruments.py --run {args.run} --seeds {args.seeds}"
    body = render(rows, changes, command, args.run)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"run": str(args.run), "rows": rows, "changes": changes}, indent=1, default=float))
    print(body)
    if not args.no_write:
        replace_section(SECTION, body)


if __name__ == "__main__":
    main()
