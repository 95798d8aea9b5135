"""Components that print and log, for the attempts' logs tests (importable by Ray workers)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import rayflow as rf

LINES = [f"line {i}: {'x' * i}" for i in range(10)]


@rf.component(num_cpus=0.1)
def chatty(x: int = 1) -> int:
    """Prints LINES and logs a warning."""
    for line in LINES:
        print(line)
    logging.getLogger("tests.chatty").warning("careful with %s", x)
    return x + 1


@rf.component(num_cpus=0.1)
def quiet(x: int) -> int:
    return x * 2


@rf.component(num_cpus=0.1, max_retries=2, retry_exceptions=(ConnectionError,))
def flaky_chatty(ledger: str) -> str:
    """Prints which attempt it is; fails its first attempt."""
    path = Path(ledger)
    with path.open("a") as f:
        f.write("x")
    n = len(path.read_text())
    print(f"this is attempt {n}")
    if n == 1:
        print("failing now", file=sys.stderr)
        raise ConnectionError("the first attempt fails")
    return "ok"


@rf.component(num_cpus=0.1)
def loud(mib: int) -> int:
    """Prints ``mib`` MiB in lines of 1 KiB, numbered."""
    line = "y" * 1017
    for i in range(mib * 1024):
        print(f"{i:06d} {line}")
    return mib


@rf.component(num_cpus=0.1)
def slow_talker(seconds: float) -> int:
    """Prints a line every 0.2 s for ``seconds``."""
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        print(f"tick {n}", flush=True)
        n += 1
        time.sleep(0.2)
    return n


@rf.component(num_cpus=0.1)
def fails_loudly(x: int) -> int:
    print("about to look up 'b'")
    return _lookup({}, "b")


def _lookup(d: dict, key: str) -> int:
    return d[key]


@rf.workflow
def talk(x: int = 1):
    return quiet(chatty(x))


@rf.workflow
def retried(ledger: str):
    return flaky_chatty(ledger)


@rf.workflow
def big(mib: int = 100):
    return loud(mib)


@rf.workflow
def follow(seconds: float = 5.0):
    return slow_talker(seconds)


@rf.workflow
def broken(x: int = 1):
    return fails_loudly(quiet(x))


@rf.component(num_cpus=0.1, fuse=True)
def tiny(x: int, tag: str) -> int:
    print(f"{tag} got {x}")
    return x + 1


@rf.workflow
def fused_chain(n: int = 4):
    x = tiny.options(id="t0")(0, "t0")
    for i in range(1, n):
        x = tiny.options(id=f"t{i}")(x, f"t{i}")
    return x


@rf.component(num_cpus=0.1)
def item_talker(x: int) -> int:
    print(f"item {x}")
    return x * 10


@rf.component(num_cpus=0.1)
def items(n: int) -> list:
    return list(range(n))


@rf.workflow
def mapped(n: int = 3):
    return rf.map(item_talker, items(n))


@rf.component(num_cpus=0.1)
def numbers_table(n: int):
    import pyarrow as pa

    return pa.table({"k": list(range(n))})


@rf.component(num_cpus=0.1, kind="batch", batch_size=10)
def stage_a(batch):
    print(f"a saw {batch.num_rows} rows from {batch.column('k')[0].as_py()}")
    return batch


@rf.component(num_cpus=0.1, kind="batch", batch_size=10)
def stage_b(batch):
    print(f"b saw {batch.num_rows} rows from {batch.column('k')[0].as_py()}")
    return batch


@rf.workflow
def streamed(n: int = 30):
    return stage_b(stage_a(numbers_table(n)))


def fail_while_flag(flag: str, value: int = 1) -> int:
    """Fails while the file ``flag`` exists (a spec function: resume after removing it)."""
    if Path(flag).exists():
        raise RuntimeError(f"the flag {flag} is set")
    return value
