import pickle

import pytest

from preforch.lru import LRUCache


def test_past_its_size_the_least_recently_used_entry_goes_first():
    cache = LRUCache(3)
    for k in "abc":
        cache[k] = k.upper()
    assert cache["a"] == "A"  # read: now the newest
    cache["d"] = "D"
    assert list(cache) == ["c", "a", "d"] and "b" not in cache and cache.evicted == 1
    cache["c"] = "C2"  # written again: the newest
    cache["e"] = "E"
    assert list(cache) == ["d", "c", "e"] and cache.evicted == 2  # "a" was the oldest then


def test_unbounded_by_default_and_resizing_drops_the_oldest_at_once():
    cache = LRUCache()
    cache.update({i: i for i in range(1000)})
    assert len(cache) == 1000 and cache.evicted == 0
    cache.resize(10)
    assert list(cache) == list(range(990, 1000)) and cache.evicted == 990
    cache.resize(None)
    cache.update({i: i for i in range(20)})
    assert len(cache) == 30


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_a_size_is_a_positive_integer(bad):
    with pytest.raises(ValueError, match="max_entries"):
        LRUCache(bad)


def test_a_pickled_cache_keeps_its_bound():
    cache = LRUCache(2)
    cache.update({"a": 1, "b": 2})
    again = pickle.loads(pickle.dumps(cache))
    again["c"] = 3
    assert list(again) == ["b", "c"] and again.max_entries == 2


def test_found_returns_the_cached_keys_once_each_and_makes_them_the_newest():
    cache = LRUCache(3)
    cache.update({"a": 1, "b": 2, "c": 3})
    view = cache.found(["b", "x", "a", "b"])
    assert view == {"b": 2, "a": 1} and list(view) == ["b", "a"]
    cache["d"] = 4  # "c" is now the least recently used, not "a" or "b"
    assert list(cache) == ["b", "a", "d"] and view == {"b": 2, "a": 1}
