"""The LRU the compiled-shape caches share (executor.LRU)."""

from collections.abc import Callable

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


def test_cached_makes_once_keeps_none_and_counts_as_use() -> None:
    cache: LRU[str | None] = LRU(2)
    made: list[str] = []

    def make(value: str | None) -> Callable[[], str | None]:
        def run() -> str | None:
            made.append(str(value))
            return value

        return run

    assert cache.cached("a", make("A")) == "A"
    # A shape with no fast form (None) is kept: it is not made again.
    assert cache.cached("n", make(None)) is None
    assert cache.cached("n", make("other")) is None
    assert cache.cached("a", make("other")) == "A"  # "a" is now the most recent
    assert made == ["A", "None"]
    cache.cached("c", make("C"))
    assert list(cache) == ["a", "c"]
