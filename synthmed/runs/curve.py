"""The utility curve (issue 14): the gain of ``real+synthetic`` over the best control at each ratio of the
study's sweep (``synthetic.ratios``), paired by draw, Holm-corrected over the whole curve.

At ratio r the controls are the ones whose training set does not grow with r (``real``, ``real+classic``)
and each count-matched control run at that ratio (``real+duplicate@<r>x``: as many extra rows re-drawn
from the real images as r adds synthetic ones). The best control at r is the one with the highest mean,
as in the verdict; failed generators are left out, as in the verdict. A point's CI is at its Holm level
over every (generator, ratio) point of the curve, so "helps at some ratio" is corrected for having looked at
every ratio. The curve is its own family: the verdict's Holm family is unchanged by the sweep.
"""

from __future__ import annotations

from typing import Any

from synthmed.runs.layout import CONTROL
from synthmed.runs.results import PRIMARY, _mean, verdict_family


def _sweep_rows(by: dict, usage: str, failed: set[str]) -> tuple[dict, dict, dict]:
    """(fixed controls {name: vals}, matched controls {ratio: {label: vals}}, swept usage {(gen, ratio): vals})."""
    from synthmed.conditions import get_condition, list_conditions, parse_sweep_label

    names = set(list_conditions())
    fixed = {c: by[(CONTROL, c)] for c in names if (CONTROL, c) in by and get_condition(c).is_control
             and get_condition(c).ratio_options is None}
    matched: dict[float, dict[str, dict]] = {}
    swept: dict[tuple[str, float], dict] = {}
    for (gen, label), vals in by.items():
        parsed = parse_sweep_label(label)
        if parsed is None or parsed[0] not in names:
            continue
        name, r = parsed
        if gen == CONTROL and get_condition(name).is_control:
            matched.setdefault(r, {})[label] = vals
        elif gen != CONTROL and name == usage and gen not in failed:
            swept[(gen, r)] = vals
    return fixed, matched, swept


def _paired(vals: dict, ref: dict) -> tuple[list[float], list[float]]:
    common = sorted(s for s in vals if s in ref)
    return [vals[s] for s in common], [ref[s] for s in common]


def utility_curve(rows: list[dict[str, Any]], metric: str = PRIMARY, usage: str = "real+synthetic",
                  *, alpha: float = 0.05) -> dict[str, Any]:
    """Gain of ``usage@r`` over the best control at r, for every generator and ratio r of the sweep.

    Returns ``{metric, usage, alpha, m, ratios, generators, excluded, points: [{generator, ratio, control,
    matched, gain, ci_low, ci_high, confidence, p_value, p_holm, n, mde, verdict}], duplicate: [{ratio,
    control, gain, ci_low, ci_high, n}], note}``. ``matched`` says whether the best control at r is a
    count-matched one; ``duplicate`` is each count-matched control against the baseline (what extra copies of
    the real rows do by themselves at r, 95 % t-interval, not corrected). No sweep in the rows: ``points`` empty.
    """
    from synthmed.conditions import find_condition
    from synthmed.metrics.stats import family_verdicts, paired_comparison

    fam = verdict_family(rows, metric, alpha=alpha)
    by, failed = fam["by"], fam["failed"]
    fixed, matched, swept = _sweep_rows(by, usage, failed)
    ratios = sorted({r for _, r in swept})
    pairs, meta = {}, {}
    for r in ratios:
        controls = {**fixed, **matched.get(r, {})}
        if not controls:
            continue
        best = max(controls, key=lambda c: _mean(controls[c]))
        for gen in sorted({g for g, rr in swept if rr == r}):
            a, b = _paired(swept[(gen, r)], controls[best])
            if a:
                name = f"{usage}@{r:g}x ({gen})"
                pairs[name], meta[name] = (a, b), (gen, r, best, best in matched.get(r, {}))
    tested = family_verdicts(pairs, alpha=alpha) if pairs else {}
    points = [{"generator": meta[k][0], "ratio": meta[k][1], "control": meta[k][2], "matched": meta[k][3], **v}
              for k, v in tested.items()]
    base_name = find_condition("baseline")
    base = by.get((CONTROL, base_name), {})
    duplicate = []
    for r in ratios:
        for label, vals in sorted(matched.get(r, {}).items()):
            a, b = _paired(vals, base)
            if a:
                c = paired_comparison(a, b)
                duplicate.append({"ratio": r, "control": label, "against": base_name, "gain": c["mean_diff"],
                                  "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n": c["n"]})
    unmatched = [r for r in ratios if not matched.get(r)]
    note = (f"Holm–Bonferroni over the {len(points)} point(s) of the curve ({usage} at each ratio vs the best control "
            f"at that ratio, paired by draw, α = {alpha:g})") if points else "no ratio sweep in this run"
    if unmatched:
        note += ("; no count-matched control at ratio(s) " + ", ".join(f"{r:g}" for r in unmatched)
                 + ": add real+duplicate to the conditions")
    if failed:
        note += f"; excluded (training failed): {', '.join(sorted(failed))}"
    return {"metric": metric, "usage": usage, "alpha": alpha, "m": len(points), "ratios": ratios,
            "generators": sorted({p["generator"] for p in points}), "excluded": sorted(failed), "points": points,
            "duplicate": duplicate, "note": note}


__all__ = ["utility_curve"]
