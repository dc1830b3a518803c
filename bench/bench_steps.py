"""Generator step budget → fidelity, copies and cost: the trade-off curve behind a default budget.

One generator is trained on a finished run's k-shot split with the run's own config for that family, in
increments (each increment resumes the checkpoint of the last: the loop's exact resume makes the weights
at step s equal those of an uninterrupted s-step run; no family has a schedule that depends on max_steps). At each budget the study's
synthetic set is drawn (same label plan and sampling seed as the samples stage) and judged by the run's own
instruments for that draw (its extractor stage and its reference stage: floor-relative FD, class
faithfulness vs its floor, calibrated copy rate vs the null rate), exactly as the fidelity stage does.

    SYNTHMED_DATA_DIR=../shared/data python bench/bench_steps.py --run RUN --family ddpm --seed 0 \
        --steps 500 750 1000 [--sample-steps 25 50] [--threads 1]

``--sample-steps`` (ddpm): DDIM step counts to sample with at every budget (the first is the run's own
unless given).

At the run's own budget and thread count the figures equal the run's fidelity stage (a known-answer check,
printed). Writes the ``steps-FAMILY`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from _results import header, replace_section  # noqa: E402


def stage_of(manifest: dict, name: str) -> dict:
    for s in manifest["stages"]:
        if s["name"] == name:
            return s
    raise SystemExit(f"the run has no stage '{name}' (run the study first)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--family", default="ddpm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-steps", type=int, nargs="*", default=None, help="ddpm: DDIM steps to sample with")
    ap.add_argument("--steps", type=int, nargs="+", default=[250, 500, 750, 1000])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from synthmed.generators import make_generator
    from synthmed.metrics.health import assess_health
    from synthmed.metrics.instruments import instrument_report
    from synthmed.runs import load_split_sets
    from synthmed.study.stages.extractor import instrument_callables
    from synthmed.study.stages.reference import load_reference
    from synthmed.study.stages.samples import Config as SamplesConfig, label_plan
    from synthmed.utils.runtime import seed_everything

    manifest = json.loads((args.run / "manifest.json").read_text())
    s = args.seed
    fam = args.family
    split, gen_st = stage_of(manifest, f"split seed {s}"), stage_of(manifest, f"generator {fam} seed {s}")
    ref_st, smp_st = stage_of(manifest, f"reference seed {s}"), stage_of(manifest, f"sample {fam} seed {s}")
    fid_st = stage_of(manifest, f"fidelity {fam} seed {s}")
    extractor_st = next(x for x in manifest["stages"] if x["kind"] == "extractor" and x["labels"].get("seed") == s)
    sets, _ = load_split_sets(args.run / split["folder"], os.environ.get("SYNTHMED_DATA_DIR"))
    train, held, ref = sets["train"], sets["heldout"], sets["reference"]
    extractor, featurize, predict_proba = instrument_callables(args.run / extractor_st["folder"])
    prepared = load_reference(args.run / ref_st["folder"])
    fcfg = fid_st["config"]
    labels = label_plan(SamplesConfig(**{k: v for k, v in smp_st["config"].items()}), train)
    base = dict(gen_st["config"]["config"], grid_every=10**9)  # one grid at the end only (no callbacks: unsaved)
    if "progress" in base:
        base["progress"] = False
    own_sample_steps = base.get("sample_steps")
    sample_steps = args.sample_steps or [own_sample_steps]

    def judge(images, steps: int, n_sample, train_s: float, sample_s: float) -> dict:
        rep = instrument_report((images, labels), (held.images, held.labels), (ref.images, ref.labels), train.images,
                                tuple(train.class_names), featurize=featurize, predict_proba=predict_proba,
                                alpha=fcfg["alpha"], n_subsets=fcfg["n_subsets"], n_boot=fcfg["n_boot"],
                                per_class=fcfg["per_class"], seed=fcfg["seed"], extractor=extractor, prepared=prepared)
        health = assess_health(rep["fidelity"], rep["faithfulness"], None, family=fam)
        h, m = rep["headline"], rep["fidelity"]["metrics"]
        row = {"steps": steps, "sample_steps": n_sample, "train_s_cumulative": train_s, "sample_s": sample_s,
               "fd_ratio": h["fd_ratio"], "fd_floor_ratio_ci": h["fd_floor_ratio_ci"], "faith": h["faithfulness_bacc"],
               "faith_floor": h["faithfulness_bacc_floor"], "copy": h["flag_rate"], "copy_ci": h["flag_rate_ci"],
               "null": h["null_rate"], "train_copied": h["train_copied"], "recall": m["recall"]["synthetic"],
               "coverage": m.get("coverage", {}).get("synthetic"), "health": health["status"],
               "load": os.getloadavg()[0]}
        print(json.dumps(row), flush=True)
        return row

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_s = 0.0
        for steps in sorted(args.steps):
            seed_everything(base["seed"])
            gen = make_generator(fam, dict(base, max_steps=steps))
            t0 = time.perf_counter()
            gen.fit(train.images, train.labels, out_dir=Path(tmp), resume=True)
            train_s += time.perf_counter() - t0
            for n_sample in sample_steps:
                knobs = {"steps": n_sample, "progress": False} if fam == "ddpm" else {}
                t0 = time.perf_counter()
                images = gen.sample(labels, seed=smp_st["config"]["seed"], **knobs)
                rows.append(judge(images, steps, n_sample, train_s, time.perf_counter() - t0))
    own = fid_st.get("summary", {}).get("headline", {})
    from synthmed.generators.base import get_generator_class

    budget = gen_st["config"]["config"].get("max_steps") or get_generator_class(fam).default_max_steps
    check = next((r for r in rows if r["steps"] == budget and r["sample_steps"] == own_sample_steps), None)
    check_line = ""
    if check is not None and own:
        same = abs(check["fd_ratio"] - own["fd_ratio"]) <= 1e-6 * abs(own["fd_ratio"]) and check["copy"] == own["flag_rate"]
        check_line = (f"- known-answer check at the run's own budget ({budget} steps): FD ratio {check['fd_ratio']:.4f} here vs "
                      f"{own['fd_ratio']:.4f} in the run's fidelity stage, copy rate {check['copy']:.4f} vs "
                      f"{own['flag_rate']:.4f}: {'equal (FD to 1e-6 relative, copy rate exactly)' if same else 'DIFFERENT (thread count or code changed)'}")
        print(check_line)
    if args.no_write:
        return
    lines = [header("python " + " ".join(sys.argv)),
             f"- run {args.run.name}, draw (seed) {s}: the run's own {fam} config, split, extractor and reference stage; "
             f"{len(labels)} images per budget, sampling seed {smp_st['config']['seed']}; {args.threads} torch thread(s)",
             *( [check_line] if check_line else []), "",
             "| steps | DDIM steps | train s (cumulative) | sample s | FD / floor (floor's 95 % ratio interval) | recall | coverage "
             "| faithfulness bal. acc (floor) | copy rate [95 % CI] (null) | k-shot images copied | health | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["fd_floor_ratio_ci"]
        cov = "–" if r["coverage"] is None else f"{r['coverage']:.3f}"
        lines.append(f"| {r['steps']} | {r['sample_steps'] or '–'} | {r['train_s_cumulative']:.0f} | {r['sample_s']:.0f} | {r['fd_ratio']:.1f} "
                     f"({lo:.2f}–{hi:.2f}) | {r['recall']:.3f} | {cov} | {r['faith']:.3f} ({r['faith_floor']:.3f}) | "
                     f"{r['copy']:.4f} [{r['copy_ci'][0]:.4f}, {r['copy_ci'][1]:.4f}] ({r['null']:.3f}) | "
                     f"{r['train_copied']:.2f} | {r['health']} | {r['load']:.2f} |")
    replace_section(f"steps-{fam}", f"## {fam} step budget → FD, copies, cost (issues 13/14; bench/bench_steps.py)\n\n"
                    + "\n".join(lines))


if __name__ == "__main__":
    main()
