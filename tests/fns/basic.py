"""Small importable helpers for the pure unit tests (referenced as tests.fns.basic:NAME)."""

from __future__ import annotations


class CustomError(Exception):
    """An exception class a spec can name as ``tests.fns.basic:CustomError``."""


NOT_CALLABLE = 42


def source(n: int = 1) -> int:
    return n


def double(x: int) -> int:
    return 2 * x


def add(a: int, b: int) -> int:
    return a + b


def gather(*xs: int) -> list[int]:
    return list(xs)


def combine(items: list[int], scale: int = 1) -> int:
    return sum(items) * scale


def needs_two(a: int, b: int) -> int:
    return a + b


def kw_anything(**kwargs: int) -> dict:
    return dict(kwargs)


class Counter:
    """An actor class component: state kept between calls."""

    def __init__(self, start: int = 0) -> None:
        self.value = start

    def __call__(self, step: int = 1) -> int:
        self.value += step
        return self.value


def only_positive(batch, column: str = "x"):
    import pyarrow.compute as pc

    return batch.filter(pc.greater(batch[column], 0))
