"""The LRU the compiled-shape caches share (executor.LRU)."""

from lucid_orm.database.executor import LRU


def test_keeps_the_most_recently_used_entries() -> None:
    cache: LRU[str] = LRU(2)
    assert cache.keep("a", "A") == "A"
    cache.keep("b", "B")
    # Reading "a" makes it the most recent: the next entry pushes "b" out, not "a".
    assert cache.recent("a") == "A"
    cache.keep("c", "C")
    assert list(cache) == ["a", "c"]
    assert cache.recent("b") is None


def test_an_absent_key_changes_nothing() -> None:
    cache: LRU[int] = LRU(3)
    cache.keep("x", 1)
    cache.keep("y", 2)
    assert cache.recent("z") is None
    assert list(cache.items()) == [("x", 1), ("y", 2)]
