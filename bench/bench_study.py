"""Run a whole study and record its wall time per stage and its headline table in bench/RESULTS.md.

    python bench/bench_study.py --profile default                 # the embedded default study (issue 6)
    python bench/bench_study.py --controls --seeds 5              # the control bars generators must beat (issue 5)
    python bench/bench_study.py --summarize RUN_DIR               # record a run made with `synthmed run` (its manifest)

Run it alone on the machine: record the load beside the wall time (the header does).

The second form runs no generator: `real`, `real+classic`, `real+duplicate` (count-matched to the
default 1200 synthetic images) and `all-real`, over 5 seeds, with 95 % CIs and paired tests vs `real`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, replace_section  # noqa: E402

from synthmed.study import load_study_config, run_study  # noqa: E402
from synthmed.runs import load_results, summarize_conditions  # noqa: E402


def table(rows: list[dict], metric: str) -> str:
    lines = [f"| condition | generator | n | mean {metric} | 95 % CI | Δ vs real (paired) | p |", "|---|---|---|---|---|---|---|"]
    for s in summarize_conditions(rows, metric):
        ci = f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s.get("ci_low") is not None else "–"
        vr = s.get("vs_real") or {}
        d = f"{vr['mean_diff']:+.3f}" if vr.get("mean_diff") is not None else "–"
        if vr.get("ci_low") is not None:
            d += f" [{vr['ci_low']:+.3f}, {vr['ci_high']:+.3f}]"
        p = f"{vr['p_value']:.3f}" if vr.get("p_value") is not None else "–"
        lines.append(f"| {s['condition']} | {s['generator']} | {s['n']} | {s['mean']:.3f} | {ci} | {d} | {p} |")
    return "\n".join(lines)


def verdict_table(rows: list[dict]) -> str:
    """Each (generator, condition) vs the best control, paired by draw, Holm-corrected (the report's family)."""
    from synthmed.runs.results import generator_verdicts, verdict_family

    v = generator_verdicts(rows)
    tested = verdict_family(rows, v["metric"])["tested"]
    lines = [f"Gain in {v['metric']} over the best control `{v['control']}` ({v['note']}):", "",
             "| condition (generator) | n | gain | CI (Holm level) | p | p Holm | MDE | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for name, t in tested.items():
        ci = f"[{t['ci_low']:+.3f}, {t['ci_high']:+.3f}] ({t['confidence']:.3f})" if t["ci_low"] is not None else "–"
        mde = f"{t['mde']:.3f}" if t.get("mde") is not None else "–"
        lines.append(f"| {name} | {t['n']} | {t['gain']:+.3f} | {ci} | {t['p_value']:.3f} | {t['p_holm']:.3f} | "
                     f"{mde} | {t['verdict']} |")
    return "\n".join(lines)


def _or_dash(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def agreement_table(rows: list[dict]) -> str:
    """Metric–utility agreement (the report's section) for each generator condition that has results."""
    from synthmed.runs.agreement import metric_utility_agreement
    from synthmed.runs.layout import CONTROL, FIDELITY

    usages = sorted({r["condition"] for r in rows if r["generator"] != CONTROL and r["condition"] != FIDELITY})
    out = []
    for usage in usages:
        a = metric_utility_agreement(rows, usage=usage)
        if not a["points"]:
            continue
        out += [f"Metric–utility agreement for `{usage}`: gain in {a['metric']} over `{a['control']}`, "
                f"{len(a['points'])} (generator, draw) points; ρ oriented so that > 0 = the figure agrees with "
                "usefulness; within-draw ρ with a permutation p; each p column Holm-corrected over the figures:", "",
                "| figure | n | ρ pooled [95 % CI] | p | p Holm | ρ within draws | p within | p within Holm | draws |",
                "|---|---|---|---|---|---|---|---|---|"]
        for f in a["figures"]:
            rho = "–" if f["rho"] is None else f"{f['rho']:+.2f} [{f['ci_low']:+.2f}, {f['ci_high']:+.2f}]"
            cells = [_or_dash(f.get(k), spec) for k, spec in (("p", ".3f"), ("p_holm", ".3f"), ("rho_within", "+.2f"),
                                                              ("p_within", ".3f"), ("p_within_holm", ".3f"))]
            out.append(f"| {f['label']} | {f['n']} | {rho} | {' | '.join(cells)} | {f.get('draws') or '–'} |")
        out.append("")
    return "\n".join(out)


def summarize_run(out: Path, title: str, command: str, note: str = "") -> str:
    """The section body for a finished run folder: wall time, time per stage kind, headline tables."""
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    rows = load_results(out)
    by_kind: dict[str, float] = defaultdict(float)
    for s in manifest["stages"]:  # each stage's own record: the seconds it took when it ran, cached now or not
        by_kind[s["kind"]] += s["wall_s"]
    wall = manifest["wall_s"]
    stage_lines = "\n".join(f"| {s['name']} | {s['wall_s']:.1f} | {'cached' if s['cached'] else ''} |" for s in manifest["stages"])
    return (
        f"### {title}\n\n" + header(command)
        + f"- executor: {manifest['executor']}; this manifest's wall time: {wall:.0f} s ({wall / 60:.1f} min) for "
        f"{manifest['stages_run']} stages run ({manifest['stages_cached']} cached, their seconds are from when they ran)\n"
        + (f"- {note}\n" if note else "")
        + f"- stage seconds summed by kind (worker time, not wall; total {sum(by_kind.values()):.0f} s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in by_kind.items()) + "\n\n"
        + verdict_table(rows) + "\n\n" + agreement_table(rows) + "\n"
        + table(rows, "roc_auc") + "\n\n" + table(rows, "macro_f1") + "\n\n"
        + "<details><summary>per-stage wall time</summary>\n\n| stage | s | |\n|---|---|---|\n" + stage_lines + "\n\n</details>\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--controls", action="store_true", help="controls only (no generators)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--section", default=None)
    ap.add_argument("--workers", type=int, default=None, help="local executor workers (default: synthmed's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--summarize", type=Path, default=None, help="record this finished run folder; run nothing")
    ap.add_argument("--note", default="", help="with --summarize: how the run was made (load, restarts)")
    args = ap.parse_args()
    if args.summarize:
        name = json.loads((args.summarize / "manifest.json").read_text())["study"]
        section = args.section or "study-summary"
        argv = [a if a != args.note else "NOTE" for a in sys.argv]  # the note is its own line below
        body = summarize_run(args.summarize, f"Study `{name}` ({args.summarize.name})", " ".join(["python", *argv]),
                             args.note)
        replace_section(section, body)
        print(body)
        return
    data: dict = {}
    if args.controls:
        data = {"name": "controls", "generators": [], "conditions": ["real", "real+classic", "real+duplicate", "all-real"]}
    if args.seeds:
        data["seeds"] = list(range(args.seeds))
    cfg = load_study_config(data, profile=args.profile)
    section = args.section or ("study-controls" if args.controls else f"study-{args.profile}")
    out = args.out or Path("bench/out") / section
    t0 = time.perf_counter()
    from synthmed.study import LocalExecutor

    manifest = run_study(cfg, out, executor=LocalExecutor(workers=args.workers), data_dir=os.environ.get("SYNTHMED_DATA_DIR"),
                         progress=True, threads=args.threads)
    wall = time.perf_counter() - t0
    rows = load_results(out)
    by_kind: dict[str, float] = defaultdict(float)
    for s in manifest["stages"]:
        if not s["cached"]:
            by_kind[s["kind"]] += s["wall_s"]
    stage_lines = "\n".join(f"| {s['name']} | {s['wall_s']:.1f} | {'cached' if s['cached'] else ''} |" for s in manifest["stages"])
    body = (
        f"### Study `{cfg.name}` (profile {args.profile}{', controls only' if args.controls else ''}, seeds {cfg.seeds})\n\n"
        + header(" ".join(["python", *sys.argv]))
        + f"- wall time: {wall:.0f} s ({wall / 60:.1f} min) for {manifest['stages_run']} stages "
        f"({manifest['stages_cached']} cached); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n"
        + "- wall time by stage kind (s): " + ", ".join(f"{k} {v:.0f}" for k, v in by_kind.items()) + "\n\n"
        + table(rows, "roc_auc") + "\n\n" + table(rows, "macro_f1") + "\n\n"
        + "<details><summary>per-stage wall time</summary>\n\n| stage | s | |\n|---|---|---|\n" + stage_lines + "\n\n</details>\n"
    )
    replace_section(section, body)
    print(body)


if __name__ == "__main__":
    main()
