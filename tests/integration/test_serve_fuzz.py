"""An OpenAPI fuzz run (schemathesis + hypothesis) against the app served on 127.0.0.1: zero 5xx.

Every operation of /openapi.json gets ``EXAMPLES`` generated requests (derandomized, so the run is
the same each time). The ``run``, ``generator`` and ``class`` parameters are widened to "a real
name, or any string", so the fuzzer reaches the model code on the real smoke run and not only the
404 paths. Bounded in count (EXAMPLES per operation) and in time (the pytest timeout).
"""

from __future__ import annotations

import collections
import json

import pytest

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")
schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (dev extra)")
pytestmark = pytest.mark.integration

from test_serve_live import live_server  # noqa: E402,F401 — the uvicorn fixture over the smoke run

EXAMPLES = 40  # per operation: 8 operations → 320 requests


def _widen(raw: dict, names: dict[str, list]) -> dict:
    """Each parameter/property named in ``names``: one of the real values, or any string."""
    def visit(node):
        if isinstance(node, dict):
            for key, schema in list(node.get("properties", {}).items()):
                if key in names:
                    node["properties"][key] = {"anyOf": [{"enum": names[key]}, schema]}
            if node.get("in") in ("path", "query") and node.get("name") in names:
                node["schema"] = {"anyOf": [{"enum": names[node["name"]]}, node["schema"]]}
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)
    visit(raw)
    return raw


@pytest.mark.timeout(900)
def test_openapi_fuzz_run_has_no_server_errors(live_server):  # noqa: F811
    import httpx
    import torch
    from hypothesis import HealthCheck, given, settings

    url, _ = live_server
    gens = httpx.get(f"{url}/api/runs/smoke/generators").json()
    clfs = httpx.get(f"{url}/api/runs/smoke/classifiers").json()
    raw = _widen(httpx.get(f"{url}/openapi.json").json(), {
        "run": ["smoke"], "generator": [g["id"] for g in gens], "class": gens[0]["classes"],
        "conditions": [[c["condition"]] for c in clfs[:2]]})
    schema = schemathesis.openapi.from_dict(raw)
    # create_app turned on flush-to-zero for torch in this thread; hypothesis needs subnormal floats
    torch.set_flush_denormal(False)
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def fuzz(case):
            r = case.call(base_url=url, timeout=120)
            counts[(op.label, r.status_code)] += 1
            if r.status_code >= 500:
                failures.append(f"{op.label} {r.status_code}: {case.body!r:.200} → {r.text[:200]}")
        fuzz()
    total = sum(counts.values())
    by_status = collections.Counter()
    for (_, status), n in counts.items():
        by_status[status] += n
    print(f"\nfuzz run: {total} requests; by status: {json.dumps(dict(sorted(by_status.items())))}; "
          f"by operation: {json.dumps({f'{k[0]} {k[1]}': v for k, v in sorted(counts.items())})}")
    assert total >= 8 * 10 and not failures, "\n".join(failures[:10])
    assert any(status == 200 for (label, status) in counts if label == "POST /api/generate"), counts
