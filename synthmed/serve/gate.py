"""Model work off the event loop: at most ``concurrency`` jobs run, at most ``queue`` wait, the rest get 429.

The jobs (sampling, classifying) are CPU-bound torch calls, so they run in a thread pool of
``concurrency`` workers; torch releases the GIL inside its kernels, so the event loop keeps answering
``/api/health`` and page requests while they run.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from synthmed.errors import SynthmedError

T = TypeVar("T")


class BusyError(SynthmedError):
    """Every worker is busy and the queue is full (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class JobGate:
    """An ``asyncio.Semaphore`` of ``concurrency`` slots in front of a bounded waiting room of ``queue``."""

    def __init__(self, concurrency: int = 2, queue: int = 8):
        if concurrency < 1 or queue < 0:
            raise SynthmedError(f"concurrency must be ≥ 1 and queue ≥ 0; got {concurrency} and {queue}")
        self.concurrency, self.queue = concurrency, queue
        self.running = 0
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None  # made lazily, inside the server's event loop
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="synthmed-job")
        self._mean_s = 1.0  # running mean of job seconds, for Retry-After

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the measured job rate."""
        return max(1, math.ceil(self._mean_s * (self.waiting + 1) / self.concurrency))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker thread once a slot is free; ``BusyError`` if the queue is full."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        if self.running + self.waiting >= self.concurrency + self.queue:
            raise BusyError(f"server busy: {self.running} jobs running and {self.waiting} queued (queue limit "
                            f"{self.queue}); retry later", self.retry_after())
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        t0 = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args))
        finally:
            self.running -= 1
            self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - t0)
            self._sem.release()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
