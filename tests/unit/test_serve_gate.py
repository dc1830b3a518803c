"""The job gate (concurrency limit + bounded queue → 429) and the bounded model cache."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")

from synthmed.errors import SynthmedError  # noqa: E402
from synthmed.serve.gate import BusyError, JobGate  # noqa: E402
from synthmed.serve.models import ModelCache, resolve_class  # noqa: E402
from synthmed.serve.security import NotFoundError  # noqa: E402


def test_gate_runs_at_most_concurrency_and_refuses_beyond_the_queue():
    gate = JobGate(concurrency=2, queue=3)
    release = threading.Event()
    peak, now, lock = [0], [0], threading.Lock()

    def job():
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        release.wait(5)
        with lock:
            now[0] -= 1
        return threading.current_thread().name

    async def main():
        tasks = [asyncio.create_task(gate.run(job)) for _ in range(8)]
        await asyncio.sleep(0.3)
        assert (gate.running, gate.waiting) == (2, 3)
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    out = asyncio.run(main())
    busy = [o for o in out if isinstance(o, BusyError)]
    done = [o for o in out if isinstance(o, str)]
    assert len(done) == 5 and len(busy) == 3  # 2 running + 3 queued succeed; 3 are turned away
    assert all(name.startswith("synthmed-job") for name in done)  # off the event loop
    assert peak[0] == 2
    assert all(b.retry_after >= 1 and "queue limit 3" in str(b) for b in busy)
    assert (gate.running, gate.waiting) == (0, 0)
    gate.close()


def test_gate_releases_its_slot_when_a_job_fails():
    gate = JobGate(concurrency=1, queue=0)

    def boom():
        raise SynthmedError("bad")

    async def main():
        with pytest.raises(SynthmedError):
            await gate.run(boom)
        return await gate.run(lambda: 42)

    assert asyncio.run(main()) == 42
    gate.close()


def test_gate_rejects_bad_settings():
    with pytest.raises(SynthmedError, match="concurrency must be"):
        JobGate(concurrency=0)


def test_cache_is_lru_bounded_and_loads_once(tmp_path):
    paths = [tmp_path / f"m{i}.pt" for i in range(3)]
    for p in paths:
        p.write_bytes(b"x")
    cache = ModelCache(2)
    load = lambda p: object()  # noqa: E731
    a = cache.get(paths[0], load)
    assert cache.get(paths[0], load) is a and cache.loads == 1
    cache.get(paths[1], load)
    cache.get(paths[0], load)  # m0 is now the most recent
    cache.get(paths[2], load)  # evicts m1
    assert len(cache) == 2 and cache.loads == 3
    assert cache.get(paths[0], load) is a
    cache.get(paths[1], load)
    assert cache.loads == 4


def test_cache_loads_a_cold_model_once_under_concurrent_requests(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"x")
    cache = ModelCache(2)

    def slow(p):
        time.sleep(0.2)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(path, slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.loads == 1 and len({id(g) for g in got}) == 1


def test_resolve_class_by_name_or_index():
    names = ["normal", "pneumonia"]
    assert resolve_class(names, "pneumonia") == 1 and resolve_class(names, 0) == 0 and resolve_class(names, "1") == 1
    with pytest.raises(NotFoundError, match="did you mean 'pneumonia'"):
        resolve_class(names, "pneumonia2")
    with pytest.raises(NotFoundError):
        resolve_class(names, 2)
