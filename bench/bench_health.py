"""Family × dataset health table (issue 16): one row per generator run in finished study folders.

Reads each run's fidelity stages (the calibrated instruments and the health verdict the study itself
recorded) and prints a markdown table: health, floor-relative FD, precision / recall / coverage against
the held-out floor, class faithfulness against its floor, copy rate against the detector's null rate,
and the path of the sample grid to look at. Nothing is recomputed here.

    python bench/bench_health.py RUN [RUN ...]                  # markdown to stdout
    python bench/bench_health.py RUN ... --json rows.json        # and the rows as JSON
    python bench/bench_health.py RUN --config study.yaml         # the stages of another config run in RUN
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def _stage(folder: Path) -> dict:
    return json.loads((folder / "stage.json").read_text())


def _metric(fid: dict, name: str) -> tuple[float | None, float | None]:
    m = (fid.get("fidelity", {}).get("metrics") or {}).get(name) or {}
    return m.get("synthetic"), m.get("floor")


def _dataset_label(cfg) -> str:
    ds = cfg.dataset
    return f"{ds.name}_{ds.size}" + ("_grey" if ds.channels == 1 else "") + (
        f" ({', '.join(ds.classes)})" if isinstance(ds.classes, list) else "")


def rows_of(run: Path, config: Path | None = None, every: bool = False) -> list[dict]:
    """One dict per fidelity stage of ``run`` (a study folder) that ``config`` (default: the run's
    config.yaml) expands to today (a run folder also keeps stages of earlier configs and earlier health
    rules); ``every``: each fidelity stage in the folder, whatever rules judged it."""
    from synthmed.study import load_study_config
    from synthmed.study.expand import expand_study
    from synthmed.study.graph import topological_order

    cfg = load_study_config(yaml.safe_load((config or run / "config.yaml").read_text()))
    wanted = None if every else {s.folder_name for s in topological_order(expand_study(cfg)) if s.kind == "fidelity"}
    stages = run / "stages"
    records = {p.name: _stage(p) for p in stages.iterdir() if (p / "stage.json").is_file()}
    dataset = _dataset_label(cfg)
    out = []
    for name, rec in sorted(records.items()):
        if rec["kind"] != "fidelity" or (wanted is not None and name not in wanted):
            continue
        fid = json.loads((stages / name / "fidelity.json").read_text())
        samples_name = rec["inputs"]["samples"]
        samples = records[samples_name]
        gen = records.get(rec["inputs"].get("generator") or samples["inputs"].get("generator"), {})
        gen_summary = gen.get("summary") or {}
        h, head = fid["health"], fid["headline"]
        row = {
            "run": str(run), "dataset": dataset,
            "generator": rec["labels"].get("generator"), "seed": rec["labels"].get("seed"),
            "family": gen.get("config", {}).get("family"), "gen_config": gen.get("config", {}).get("config"),
            "sample": samples.get("config", {}).get("sample"),
            "steps": gen_summary.get("steps_done"), "stopped_by": gen_summary.get("stopped_by"),
            "generator_s": gen.get("wall_s"), "samples_s": samples.get("wall_s"),
            "health": h["status"], "reason": h.get("reason"),
            "fd_ratio": head.get("fd_ratio"),
            "faith": head.get("faithfulness_bacc"), "faith_floor": head.get("faithfulness_bacc_floor"),
            "faith_verdict": head.get("faithfulness"),
            "copy_rate": head.get("flag_rate"), "null_rate": head.get("null_rate"),
            "grid": str(stages / samples_name / "grid.png"),
        }
        for m in ("precision", "recall", "coverage"):
            row[m], row[m + "_floor"] = _metric(fid, m)
        out.append(row)
    return out


def _f(v, nd=2):
    return "–" if v is None else f"{v:.{nd}f}"


def markdown(rows: list[dict]) -> str:
    head = ("| dataset | generator | steps | health | FD / floor | precision (floor) | recall (floor) | "
            "coverage (floor) | faithfulness bal. acc. (floor) | copy rate (null) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['generator']} | {r['steps']} | **{r['health']}** | {_f(r['fd_ratio'], 1)} | "
            f"{_f(r['precision'])} ({_f(r['precision_floor'])}) | {_f(r['recall'])} ({_f(r['recall_floor'])}) | "
            f"{_f(r['coverage'])} ({_f(r['coverage_floor'])}) | {_f(r['faith'], 3)} ({_f(r['faith_floor'], 3)}) "
            f"{r['faith_verdict']} | {_f(r['copy_rate'], 4)} ({_f(r['null_rate'], 3)}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--config", type=Path, help="read the stages this study config expands to (default: each "
                    "run's config.yaml)")
    ap.add_argument("--every", action="store_true", help="every fidelity stage in the folder (also those of "
                    "earlier configs or health rules)")
    args = ap.parse_args(argv)
    rows = [r for run in args.runs for r in rows_of(run, args.config, args.every)]
    print(markdown(rows))
    failed = [r for r in rows if r["health"] != "ok"]
    for r in failed:
        print(f"\n- {r['dataset']} {r['generator']}: {r['reason']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
