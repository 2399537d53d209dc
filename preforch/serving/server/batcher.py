"""Concurrent requests into batched generation calls, through a bounded queue.

One worker task drains whatever requests wait (up to `max_batch`), groups those with the same sampling settings
and answers each group with one call of `answer` in a worker thread (the event loop keeps accepting requests
meanwhile); a group whose call fails is answered request by request, so only the failing request fails. A full queue refuses at once (`QueueFull`, HTTP 503) rather than letting latency grow unbounded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence


class QueueFull(Exception):
    """The queue holds `queue_size` requests already; retry later."""


@dataclass
class Job:
    """One request: its prompt, preference spec (None: the orchestrator's), and a hashable sampling key;
    jobs batch together only with the same key."""

    prompt: tuple[dict, ...]
    preference: str | None
    sampling: Hashable
    future: asyncio.Future | None = None


def group_by_sampling(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs split into groups of equal `sampling`, in order of each group's first job."""
    groups: dict[Hashable, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.sampling, []).append(job)
    return list(groups.values())


class Batcher:
    """`answer(jobs) -> results` (one per job, blocking; may raise) serves every job through the queue."""

    def __init__(self, answer: Callable[[list[Job]], list[Any]], queue_size: int, max_batch: int):
        self.answer, self.queue_size, self.max_batch = answer, queue_size, max_batch
        self.batches = 0  # answer calls so far, for /health and tests
        self._queue: asyncio.Queue[Job] | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Create the queue and start the worker; call inside the running event loop."""
        self._queue = asyncio.Queue(self.queue_size)
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, job: Job) -> Any:
        """The job's result once its batch is answered; `QueueFull` at once when the queue is full."""
        job.future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull from None
        return await job.future

    async def _work(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            for group in group_by_sampling(jobs):
                group = [j for j in group if not j.future.done()]  # a client that went away is not answered
                if not group:
                    continue
                results = await self._answer(group)
                for job, result in zip(group, results):
                    if not job.future.done():
                        (job.future.set_exception if isinstance(result, Exception) else job.future.set_result)(result)

    async def _answer(self, group: list[Job]) -> list[Any]:
        """`answer(group)`'s results, or per job the exception it raised. When a batch fails, each of its jobs is
        answered alone, so a request that cannot be answered fails by itself and its neighbours are answered."""
        try:
            self.batches += 1
            return await asyncio.to_thread(self.answer, group)
        except Exception as e:  # noqa: BLE001 - the worker lives on; the request(s) get the error
            if len(group) == 1:
                return [e]
            return [result for job in group for result in await self._answer([job])]
