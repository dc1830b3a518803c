"""An OpenAPI fuzz run (schemathesis + hypothesis) against the app served on 127.0.0.1: zero 5xx.

Every operation of /openapi.json gets ``EXAMPLES`` generated requests (derandomized, so the run is
the same each time) in two passes: the schema as served (any names: the 404 and validation paths),
then with ``run``, ``generator``, ``class`` and ``conditions`` pinned to the real smoke run's names,
so the fuzzer reaches the model code too. Bounded in count (EXAMPLES per operation) and in time (the pytest timeout).
"""

from __future__ import annotations

import collections
import copy
import json

import pytest

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")
schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (dev extra)")
pytestmark = pytest.mark.integration

from test_serve_live import live_server  # noqa: E402,F401 — the uvicorn fixture over the smoke run

EXAMPLES = 30  # per operation and pass: 8 operations × 2 passes → at most 480 requests


def _pin(raw: dict, values: dict[str, dict]) -> dict:
    """A copy of the schema with each parameter/property named in ``values`` replaced by that schema.
    (A union "real name or any string" does not work: hypothesis-jsonschema merges it into "any string".)"""
    raw = copy.deepcopy(raw)

    def visit(node):
        if isinstance(node, dict):
            for key in list(node.get("properties", {})):
                if key in values:
                    node["properties"][key] = values[key]
            if node.get("in") in ("path", "query") and node.get("name") in values:
                node["schema"] = values[node["name"]]
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)
    visit(raw)
    return raw


def _fuzz(schema, url: str, counts: collections.Counter, failures: list[str]) -> None:
    from hypothesis import HealthCheck, given, settings

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


@pytest.mark.timeout(900)
def test_openapi_fuzz_run_has_no_server_errors(live_server):  # noqa: F811
    import httpx
    import torch

    url, _ = live_server
    gens = httpx.get(f"{url}/api/runs/smoke/generators").json()
    clfs = httpx.get(f"{url}/api/runs/smoke/classifiers").json()
    raw = httpx.get(f"{url}/openapi.json").json()
    pinned = _pin(raw, {"run": {"enum": ["smoke"]}, "generator": {"enum": [g["id"] for g in gens]},
                        "class": {"enum": gens[0]["classes"] + [0, 1]}, "n": {"type": "integer", "minimum": 1, "maximum": 8},
                        "conditions": {"enum": [[c["condition"]] for c in clfs[:2]] + [None]}})
    # create_app turned on flush-to-zero for torch in this thread; hypothesis needs subnormal floats
    torch.set_flush_denormal(False)
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    for doc in (raw, pinned):  # any names (the 404 and validation paths), then the real run's names (model code)
        _fuzz(schemathesis.openapi.from_dict(doc), url, counts, failures)
    total = sum(counts.values())
    by_status = collections.Counter()
    for (_, status), n in counts.items():
        by_status[status] += n
    print(f"\nfuzz run: {total} requests; by status: {json.dumps(dict(sorted(by_status.items())))}; "
          f"by operation: {json.dumps({f'{k[0]} {k[1]}': v for k, v in sorted(counts.items())})}")
    assert total >= 8 * 10 and not failures, "\n".join(failures[:10])
    assert any(status == 200 for (label, status) in counts if label == "POST /api/generate"), counts
