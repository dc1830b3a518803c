"""DDPM samplers at the same weights: DDIM-100 (reference), DDIM-50 (today's default), DPM-Solver++ and
UniPC at 10/15/20 steps — sampling wall time and the calibrated instruments (issue 13: a multistep
solver is kept only where its FD stays within 10 % of DDIM-100's).

Setup, the study's own way: the default study (ddpm only) is expanded and its split (seed 0, |H| = 1000),
domain extractor (trained on E) and ddpm generator stages (the default step budget) are executed into
one run folder, so ``generator.pt`` is written by the project's checkpoint code. Then the same weights
are sampled with every sampler (1,000 images, balanced, seed 0, 1 torch thread) and each set is scored
against R beside the H-vs-R floor (``metrics.fidelity.matched_fidelity``, domain features) and judged
for class faithfulness by the E-trained classifier (``metrics.faithfulness.class_faithfulness``).

Modes (JSON in bench/out/sampler*.json; ``write`` updates bench/RESULTS.md):
    python bench/bench_sampler.py train [--run /tmp/sampler-ddpm] [--reuse RUN_DIR]   # split, extractor, ddpm
    python bench/bench_sampler.py measure [--run /tmp/sampler-ddpm] [--only ddim-100,unipc-10]
    python bench/bench_sampler.py write
``--reuse`` copies finished split/extractor stage folders with the same stage keys from another run
(same key = same config and inputs, so the same outputs) instead of recomputing them.

Only public tools: time.perf_counter, os.getloadavg, torch, diffusers (through synthmed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from _results import header, replace_section  # noqa: E402

OUT = REPO / "bench" / "out"
SECTION = "bench_sampler"
RUN = Path("/tmp/sampler-ddpm")
N_SAMPLES, SEED, KEEP_WITHIN = 1000, 0, 0.10
# (name, sampler, steps); the first is the reference every other FD is compared with
SAMPLERS = [("ddim-100", "ddim", 100), ("ddim-50", "ddim", 50),
            ("dpm-solver-10", "dpm-solver", 10), ("dpm-solver-15", "dpm-solver", 15), ("dpm-solver-20", "dpm-solver", 20),
            ("unipc-10", "unipc", 10), ("unipc-15", "unipc", 15), ("unipc-20", "unipc", 20)]


def study_stages():
    """The default study's seed-0 split, extractor and ddpm generator stages (nothing else)."""
    from synthmed.study.config import load_study_config
    from synthmed.study.expand import expand_study

    cfg = load_study_config({"generators": [{"family": "ddpm"}]})
    by_kind = {s.kind: s for s in expand_study(cfg) if s.kind in ("split", "extractor", "generator")}
    return by_kind["split"], by_kind["extractor"], by_kind["generator"]


def context():
    from synthmed.study.stages.base import StageContext

    return StageContext(data_dir=os.environ.get("SYNTHMED_DATA_DIR"), progress=False, tensorboard=False, threads=1)


def train(run: Path, reuse: Path | None) -> dict:
    from synthmed.runs import is_stage_done
    from synthmed.study.runner import execute_stage

    stages_dir = run / "stages"
    stages_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for stage in study_stages():
        src, dst = (reuse / "stages" / stage.folder(stages_dir).name) if reuse else None, stage.folder(stages_dir)
        if stage.kind != "generator" and src is not None and is_stage_done(src) and not is_stage_done(dst):
            shutil.copytree(src, dst, dirs_exist_ok=True)  # same key: same config and inputs
        t0 = time.perf_counter()
        rec = execute_stage(stage, stages_dir, context())
        out[stage.kind] = {"folder": dst.name, "wall_s": time.perf_counter() - t0, "summary": rec["summary"]}
    return out


# -- measure -----------------------------------------------------------------------------------
def loaded_sets(run: Path):
    """(split sets, extractor, judge, generator) of the prepared run."""
    from synthmed.generators import load_generator
    from synthmed.runs.layout import GENERATOR_FILE
    from synthmed.study.stages.base import load_split_sets
    from synthmed.study.stages.extractor import load_extractor, load_judge

    split, extr, gen = (s.folder(run / "stages") for s in study_stages())
    sets, _ = load_split_sets(split, context())
    return sets, load_extractor(extr), load_judge(extr), load_generator(gen / GENERATOR_FILE)


def score(images, labels, feats_of, ref_f, held_f, held_p, held_y, judge, class_names) -> dict:
    from synthmed.metrics import faithfulness as FA
    from synthmed.metrics import fidelity as FI

    fid = FI.matched_fidelity(ref_f, held_f, feats_of(images), n_subsets=50, seed=SEED)
    faith = FA.class_faithfulness(judge.predict_proba(images), labels, held_p, held_y, class_names, n_boot=500, seed=SEED)
    m = fid["metrics"]
    out = {k: {"synthetic": m[k]["synthetic"], "floor": m[k]["floor"], "ci": m[k]["synthetic_ci"]}
           for k in ("fid", "precision", "recall", "coverage", "density")}
    out["faithfulness_bacc"] = faith["synthetic"]["balanced_accuracy"]["value"]
    out["faithfulness_bacc_floor"] = faith["floor"]["balanced_accuracy"]["value"]
    out["faithfulness"] = faith["verdict"]
    return out


def measure(run: Path, only: list[str] | None) -> dict:
    import torch

    from synthmed.metrics import features as F

    torch.set_num_threads(1)
    sets, extractor, judge, gen = loaded_sets(run)
    held, ref = sets["heldout"], sets["reference"]
    names = tuple(held.class_names)
    feats_of = lambda x: F.extract_features(extractor, x)  # noqa: E731
    ref_f, held_f, held_p = feats_of(ref.images), feats_of(held.images), judge.predict_proba(held.images)
    labels = np.repeat(np.arange(len(names)), N_SAMPLES // len(names))  # balanced, as the samples stage
    rows = {}
    for name, sampler, steps in SAMPLERS:
        if only and name not in only:
            continue
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        images = gen.sample(labels, seed=SEED, sampler=sampler, steps=steps, progress=False)
        wall = time.perf_counter() - t0
        rows[name] = {"sampler": sampler, "steps": steps, "sample_s": wall, "img_per_s": len(labels) / wall,
                      "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                      **score(images, labels, feats_of, ref_f, held_f, held_p, held.labels, judge, names)}
        print(json.dumps({name: rows[name]}), flush=True)
        dump("sampler_partial", rows)
    return {"run": str(run), "n_samples": len(labels), "seed": SEED, "threads": torch.get_num_threads(),
            "generator_steps": gen.steps_done_, "n_heldout": len(held), "n_reference": len(ref), "rows": rows,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def converge(run: Path, n: int = 200) -> dict:
    """Which ODE solution do the samplers approach? ``n`` images from the same noise with a fine DDIM
    (250 steps, ≈ the probability-flow ODE's solution for these weights), DDIM-50 and the solvers at 20:
    mean |Δ| (grey levels) to DDIM-250 and FD at |S| = |H| = n (paired: same noise, same features)."""
    import torch

    from synthmed.metrics import features as F
    from synthmed.metrics import fidelity as FI

    torch.set_num_threads(1)
    sets, extractor, _, gen = loaded_sets(run)
    held, ref = sets["heldout"], sets["reference"]
    feats_of = lambda x: F.extract_features(extractor, x)  # noqa: E731
    ref_f, held_f = feats_of(ref.images), feats_of(held.images)
    labels = np.repeat(np.arange(held.num_classes), n // held.num_classes)
    rows, fine = {}, None
    for sampler, steps in (("ddim", 250), ("ddim", 50), ("dpm-solver", 20), ("unipc", 20)):
        t0 = time.perf_counter()
        images = gen.sample(labels, seed=SEED, sampler=sampler, steps=steps, progress=False)
        fine = images.astype(float) if fine is None else fine
        fid = FI.matched_fidelity(ref_f, held_f, feats_of(images), n_subsets=10, seed=SEED)["metrics"]["fid"]
        rows[f"{sampler}-{steps}"] = {"sample_s": time.perf_counter() - t0, "fd": fid["synthetic"], "fd_floor": fid["floor"],
                                      "mean_abs_diff_to_ddim250": float(np.abs(images - fine).mean()),
                                      "mean_grey": float(images.mean()), "std_grey": float(images.std())}
        print(json.dumps(rows), flush=True)
    return {"n": len(labels), "rows": rows}


# -- write -------------------------------------------------------------------------------------
def table(res: dict) -> str:
    rows = res["rows"]
    ref_fd = rows["ddim-100"]["fid"]["synthetic"]
    floor = rows["ddim-100"]["fid"]["floor"]
    lines = ["| sampler | steps | sample s (1,000 img) | load 1-min before/after | FD (95 % CI) | FD / DDIM-100 | keep (≤ +10 %) "
             "| precision | recall | coverage | faithfulness bal. acc. |",
             "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        rel = r["fid"]["synthetic"] / ref_fd
        keep = "reference" if name == "ddim-100" else ("yes" if rel <= 1 + KEEP_WITHIN else "no")
        ci = r["fid"]["ci"]
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['sample_s']:.1f} | {r['load_1min'][0]:.2f} / {r['load_1min'][1]:.2f} "
                     f"| {r['fid']['synthetic']:.2f} ({ci[0]:.2f}–{ci[1]:.2f}) | {rel:.3f} | {keep} "
                     f"| {r['precision']['synthetic']:.3f} | {r['recall']['synthetic']:.3f} "
                     f"| {r['coverage']['synthetic']:.3f} | {r['faithfulness_bacc']:.3f} |")
    r0 = rows["ddim-100"]
    lines.append(f"| *floor: H vs R* | | | | {floor:.2f} | {floor / ref_fd:.3f} | | {r0['precision']['floor']:.3f} "
                 f"| {r0['recall']['floor']:.3f} | {r0['coverage']['floor']:.3f} | {r0['faithfulness_bacc_floor']:.3f} |")
    return "\n".join(lines)


def verdict(res: dict) -> str:
    """One sentence: the fastest sampler kept by the rule, against today's default (DDIM-50)."""
    rows, ref_fd = res["rows"], res["rows"]["ddim-100"]["fid"]["synthetic"]
    kept = [n for n, r in rows.items() if n != "ddim-100" and r["fid"]["synthetic"] <= (1 + KEEP_WITHIN) * ref_fd]
    if not kept:
        return "- kept by the rule (FD ≤ 1.10 × DDIM-100's): none."
    best = min(kept, key=lambda n: rows[n]["sample_s"])
    if best == "ddim-50":
        return (f"- kept by the rule (FD ≤ 1.10 × DDIM-100's): {', '.join(kept)}: no multistep solver qualifies; "
                "today's DDIM-50 stays the default.")
    b, d = rows[best], rows["ddim-50"]
    return (f"- kept by the rule (FD ≤ 1.10 × DDIM-100's): {', '.join(kept)}. Fastest kept: **{best}**, "
            f"{b['sample_s']:.1f} s for {res['n_samples']} images vs DDIM-50's {d['sample_s']:.1f} s "
            f"({d['sample_s'] / b['sample_s']:.1f}× faster), FD {b['fid']['synthetic'] / ref_fd:.3f} × DDIM-100's "
            f"(DDIM-50: {d['fid']['synthetic'] / ref_fd:.3f}×).")


# A one-off probe (2026-12-01, the same weights, x0 clipping switched off in every sampler by re-building the
# schedulers with clip_sample/thresholding False; not a mode of this script) explains the table:
CLIP_NOTE = """
Why the solvers miss: the x0 clipping, not the integration. With clipping off, DDIM-50, DPM-Solver++-20 and
UniPC-20 all land within 1.8-2.2 grey levels of DDIM-250 (40 images, same noise): the ODE is resolved by 20
solver steps. With clipping on (the default: DDIM's `clip_sample`, the solvers' thresholding at 1.0), the
clipped x0 predictions of the early, high-noise steps steer each sampler to a different place (24-36 grey
levels apart), and FD moves with the step count (DDIM-50 → 100: 83 → 136 on 1,000 images; 50 → 250: 95 → 181 on 200) as
much as with the solver. The model needs the clipping: unclipped DPM-Solver++-20 images are blown out
(grey std 75 vs 31-54 clipped; FD 33,296 on 1,000 images). So the 10 % rule is judged on a
clipping-dominated FD; on these weights DDIM-50 has the lowest FD of every sampler tried.
"""


def converge_table(conv: dict) -> str:
    lines = [f"Convergence check (`converge`): {conv['n']} images from the same noise; DDIM-250 ≈ the probability-flow "
             "ODE's solution for these weights; FD at |S| = |H| = n (paired, 10 half-samples).\n",
             "| sampler | sample s | FD | FD floor (n) | mean abs. grey-level diff. to DDIM-250 | mean grey | std grey |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in conv["rows"].items():
        lines.append(f"| {name} | {r['sample_s']:.1f} | {r['fd']:.1f} | {r['fd_floor']:.1f} | "
                     f"{r['mean_abs_diff_to_ddim250']:.2f} | {r['mean_grey']:.1f} | {r['std_grey']:.1f} |")
    return "\n".join(lines)


def write(res: dict, command: str) -> None:
    body = (f"## DDPM samplers at the same weights (issue 13)\n\n{header(command)}"
            f"- weights: the default study's ddpm (seed 0, {res['generator_steps']} steps, default config), "
            f"PneumoniaMNIST 28 px 50-shot split seed 0; run folder `{res['run']}`\n"
            f"- each row: {res['n_samples']} images (balanced), noise seed {res['seed']}, {res['threads']} torch thread; "
            f"FD etc. vs R (|R| = {res['n_reference']}) with the domain extractor trained on E, "
            f"floor = H vs R at |H| = {res['n_heldout']}; faithfulness = the E-trained judge's balanced accuracy\n\n"
            f"{table(res)}\n\n{verdict(res)}\n")
    conv = OUT / "sampler_converge.json"
    if conv.exists():
        body += "\n" + converge_table(json.loads(conv.read_text())) + "\n" + CLIP_NOTE
    replace_section(SECTION, body)


def dump(name: str, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["train", "measure", "converge", "write"])
    ap.add_argument("--run", type=Path, default=RUN)
    ap.add_argument("--reuse", type=Path, default=None)
    ap.add_argument("--only", default=None, help="comma-separated sampler names (measure)")
    a = ap.parse_args()
    if a.mode == "train":
        res = train(a.run, a.reuse)
        dump("sampler_train", res)
        print(json.dumps(res, indent=2))
    elif a.mode == "measure":
        res = measure(a.run, a.only.split(",") if a.only else None)
        dump("sampler", res)
    elif a.mode == "converge":
        dump("sampler_converge", converge(a.run))
    else:
        write(json.loads((OUT / "sampler.json").read_text()),
              "OMP_NUM_THREADS=1 python bench/bench_sampler.py train && python bench/bench_sampler.py measure")


if __name__ == "__main__":
    main()
