"""The utility curve of a finished study run as markdown (issue 14): one row per (generator, ratio) of the
study's ratio sweep, read from its results.json through ``synthmed.runs.utility_curve`` (the same numbers as
the report's curve section; nothing is retrained or recomputed).

    python bench/bench_curve.py RUN                 # ROC-AUC (the verdict's metric)
    python bench/bench_curve.py RUN --metric macro_f1
"""

from __future__ import annotations

import argparse


def _ci(lo, hi) -> str:
    return "–" if lo is None else f"[{lo:+.3f}, {hi:+.3f}]"


def markdown(curve: dict) -> str:
    lines = [f"{curve['note']}.", "",
             "| generator | r | best control at r | n | gain | CI (Holm level) | p (Holm) | MDE | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(curve["points"], key=lambda p: (p["generator"], p["ratio"])):
        ctrl = p["control"] + ("" if p["matched"] else " (not count-matched)")
        p_holm = "–" if p["p_holm"] is None else f"{p['p_holm']:.3g}"
        mde = "–" if p["mde"] is None else f"{p['mde']:.3f}"
        lines.append(f"| {p['generator']} | {p['ratio']:g} | {ctrl} | {p['n']} | {p['gain']:+.3f} | "
                     f"{_ci(p['ci_low'], p['ci_high'])} {100 * p['confidence']:.1f} % | {p_holm} | {mde} | {p['verdict']} |")
    if curve["duplicate"]:
        lines += ["", f"Count-matched controls against {curve['duplicate'][0]['against']} (95 % t-interval, not corrected):",
                  "", "| control | gain | 95 % CI |", "|---|---|---|"]
        lines += [f"| {d['control']} | {d['gain']:+.3f} | {_ci(d['ci_low'], d['ci_high'])} |" for d in curve["duplicate"]]
    return "\n".join(lines)


def main() -> None:
    from synthmed.runs import load_results, utility_curve

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--metric", default="roc_auc")
    args = ap.parse_args()
    print(markdown(utility_curve(load_results(args.run), args.metric)))


if __name__ == "__main__":
    main()
