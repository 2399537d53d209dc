"""A mapping that holds at most `max_entries` items and drops the least recently used first: the caches a
long-lived process keeps per prompt or per (prompt, reply) (the orchestrator's weights and features, the reward
ensemble's scores) are these, so `preforch serve`'s memory stays bounded however many distinct prompts it sees
(`serve --cache_size`). Unbounded (None) by default: training and evaluation keep everything they scored."""

from __future__ import annotations

from collections import OrderedDict


class LRUCache(OrderedDict):
    """An OrderedDict in recency order: reading (`cache[key]`) or writing an entry makes it the newest; past
    `max_entries` the oldest go. `evicted` counts what went."""

    def __init__(self, max_entries: int | None = None):
        super().__init__()
        self.max_entries: int | None = None
        self.evicted = 0
        self.resize(max_entries)

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        self._trim()

    def found(self, keys) -> dict:
        """The entries cached for `keys` (each key once, in first-seen order), each made the newest: the caller's
        own view, which entries it stores next cannot evict from under it."""
        return {k: self[k] for k in dict.fromkeys(keys) if k in self}

    def resize(self, max_entries: int | None) -> None:
        """Hold at most `max_entries` from now on (None: no bound), dropping the oldest beyond it now."""
        if max_entries is not None and (isinstance(max_entries, bool) or not isinstance(max_entries, int)
                                        or max_entries < 1):
            raise ValueError(f"max_entries: expected a positive integer or None, got {max_entries!r}")
        self.max_entries = max_entries
        self._trim()

    def _trim(self) -> None:
        while self.max_entries is not None and len(self) > self.max_entries:
            self.popitem(last=False)
            self.evicted += 1
