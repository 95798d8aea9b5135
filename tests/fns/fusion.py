"""Components and workflows of the fusion tests (importable by Ray workers)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import rayflow as rf


@rf.component(num_cpus=0.1, fuse=True)
def inc(x):
    return x + 1


@rf.component(num_cpus=0.1, fuse=True)
def seed(i):
    return i * 10


@rf.component(num_cpus=0.1, fuse=True, num_outputs=2)
def split(x):
    return x, x * 2


@rf.component(num_cpus=0.1, fuse=True)
def add(*xs):
    return sum(xs)


@rf.component(num_cpus=0.1, fuse=True)
def boom(x=None):
    raise ValueError("boom inside the group")


@rf.component(num_cpus=0.1, fuse=True)
def sleepy(seconds, value=None):
    time.sleep(seconds)
    return value


@rf.component(num_cpus=0.1, fuse=True)
def big(x):
    return bytes(200_000) + bytes([x % 256])   # over the inline checkpoint limit


@rf.component(num_cpus=0.1, fuse=True)
def size(blob):
    return len(blob)


@rf.component(num_cpus=0.1, fuse=True)
def tick(folder: str, tag: str, x=0):
    """Appends ``tag pid`` to the folder's ledger; fails while the file ``fail-<tag>`` exists;
    with ``flaky-<tag>`` holding a number, fails that many times first (ConnectionError)."""
    base = Path(folder)
    with (base / "ledger").open("a") as f:
        f.write(f"{tag} {os.getpid()}\n")
    if (base / f"fail-{tag}").exists():
        raise ValueError(f"{tag} told to fail")
    flaky = base / f"flaky-{tag}"
    if flaky.exists():
        left = int(flaky.read_text() or 0)
        if left > 0:
            flaky.write_text(str(left - 1))
            raise ConnectionError(f"{tag}: {left} failures left")
    return x + 1


def ledger(folder: str | Path) -> list[tuple[str, int]]:
    path = Path(folder) / "ledger"
    if not path.exists():
        return []
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


def counts(folder: str | Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for tag, _ in ledger(folder):
        out[tag] = out.get(tag, 0) + 1
    return out


@rf.workflow
def mixed(fuse: bool = True, leaves: int = 6):
    """Chains, a fan-out and a diamond under one head, a component with two outputs read
    inside and outside its group, independent leaves, and unfused readers of the groups."""
    return _mixed(fuse, leaves)


@rf.workflow(max_concurrency=3)
def mixed_bounded(fuse: bool = True, leaves: int = 6):
    return _mixed(fuse, leaves)


def _mixed(fuse: bool, leaves: int):
    f = {"fuse": fuse}
    a = inc.options(id="a0", **f)(1)
    for i in range(1, 5):
        a = inc.options(id=f"a{i}", **f)(a)
    h = seed.options(id="h", **f)(3)
    parts = [inc.options(id=f"fan{i}", **f)(h) for i in range(3)]
    joined = add.options(id="join", **f)(*parts)
    x, y = split.options(id="split", **f)(joined)
    inner = add.options(id="inner", **f)(x, y)
    outside = add.options(id="outside", fuse=False)(y, a)
    leaf_values = [seed.options(id=f"leaf{i}", **f)(i) for i in range(leaves)]
    total = add.options(id="total", fuse=False)(*leaf_values)
    return {"chain": a, "inner": inner, "outside": outside, "total": total}


def failing(strategy: str):
    @rf.workflow(name=f"failing_{strategy}", failure_strategy=strategy)
    def wf():
        a = inc.options(id="a")(1)
        b = boom.options(id="b")(a)
        c = inc.options(id="c")(b)
        d = inc.options(id="d")(a)
        out_c = inc.options(id="out_c", fuse=False)(c)
        out_d = inc.options(id="out_d", fuse=False)(d)
        return [out_c, out_d]

    return wf


fail_fast_wf = failing("fail_fast")
continue_wf = failing("continue_on_error")


@rf.workflow(failure_strategy="continue_on_error")
def timeout_wf():
    a = inc.options(id="a")(1)
    slow = sleepy.options(id="slow", timeout_s=0.5)(30, a)
    after = inc.options(id="after")(slow)
    fine = inc.options(id="fine")(a)
    return [after, fine]


@rf.workflow
def ledgered(folder: str, retries: int = 0):
    """A chain of four ``tick`` members (t0..t3), then an unfused reader."""
    x = 0
    for i in range(4):
        x = tick.options(id=f"t{i}", max_retries=retries, retry_exceptions=(ConnectionError,))(folder, f"t{i}", x)
    return add.options(id="end", fuse=False)(x)


@rf.workflow
def big_inside():
    blob = big.options(id="blob")(1)
    return size.options(id="size")(blob)


@rf.workflow
def slow_group(folder: str):
    """A group whose second member sleeps long, then a reader outside."""
    first = tick.options(id="first")(folder, "first")
    slow = sleepy.options(id="slow")(60, first)
    return add.options(id="end", fuse=False)(inc.options(id="last")(slow))


def packed(fails: str):
    """Trees that each read two other groups (three chains asking for different resources),
    packed into one group (rayflow.plan.fusion): ``fails`` is "member" (q0, a fused member,
    raises) or "source" (q0 reads src2, a plain component that raises: then no group reads
    both the q chain and another). u and us do not read the q chain: they must run."""

    @rf.workflow(name=f"packed_{fails}", failure_strategy="continue_on_error")
    def wf():
        p1 = inc.options(id="p1")(inc.options(id="p0")(1))
        if fails == "source":
            q0 = inc.options(id="q0", num_cpus=0.2)(boom.options(id="src2", fuse=False)())
        else:
            q0 = boom.options(id="q0", num_cpus=0.2)(2)
        q1 = inc.options(id="q1", num_cpus=0.2)(q0)
        r1 = inc.options(id="r1", num_cpus=0.3)(inc.options(id="r0", num_cpus=0.3)(3))
        us = sleepy.options(id="us")(1.0, add.options(id="u")(p1, r1))
        v = add.options(id="v")(q1, r1)
        w = add.options(id="w")(p1, q1)
        return [inc.options(id="out_u", fuse=False)(us), inc.options(id="out_v", fuse=False)(v),
                inc.options(id="out_w", fuse=False)(w)]

    return wf


@rf.workflow
def slow_fan(n: int = 8, seconds: float = 0.06):
    """``fuse=True`` components that are not tiny: a fan-out of ``n`` sleeps under one head."""
    h = seed.options(id="head")(1)
    return add.options(id="sink")(*[sleepy.options(id=f"nap{i}")(seconds, h) for i in range(n)])
