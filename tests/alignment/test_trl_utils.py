"""Shared TRL pieces: the per-step memory release that keeps long CPU RL runs bounded (issue 15)."""

import preforch.alignment.trl_utils as trl_utils


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_the_trainer_callback_releases_memory_after_every_step(monkeypatch):
    calls = []
    monkeypatch.setattr(trl_utils, "release_memory", lambda: calls.append(1))
    callback = trl_utils.memory_releaser()
    for _ in range(3):
        callback.on_step_end(None, None, None)
    assert calls == [1, 1, 1]


def test_release_memory_returns_fragmented_free_heap_to_the_os():
    blocks = [bytearray(4096) for _ in range(25_000)]  # ~100 MB through malloc
    kept = blocks[::16]  # live blocks scattered through the heap: free() alone cannot shrink it
    del blocks
    held = rss_mb()
    trl_utils.release_memory()
    assert held - rss_mb() > 50, "malloc_trim should hand back most of the ~94 MB freed"
    assert len(kept) == 1563
