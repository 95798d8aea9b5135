"""The chaos suite: generated DAGs run while Ray workers, drivers, servers, the tracker,
Redis and PostgreSQL are killed at random instants, drivers are paused past their lease
and the checkpoint disk fills; after each scenario every run is resumed and checked
(tests/chaos/scenarios.py, tests/support/chaos.py).

The default (CI) is one scenario of each kind with a fixed seed. Settings:
``RAYFLOW_CHAOS_SEED`` (the base seed; each scenario's seed derives from it and its
index), ``RAYFLOW_CHAOS_SCENARIOS=N`` (N scenarios: each kind once, then kinds drawn at
random), ``RAYFLOW_CHAOS_SECONDS=S`` (a soak: scenarios drawn until S seconds have passed;
the rest are skipped), ``RAYFLOW_CHAOS_STORE=sqlite|postgresql`` (every scenario's store;
by default the seed picks one). A failure names the seed and the command that replays it.
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import pytest

from tests.chaos import scenarios
from tests.chaos.known import explain
from tests.chaos.scenarios import KINDS, Ctx
from tests.helpers import free_port
from tests.support import chaos
from tests.support.chaos import TALLY

pytestmark = pytest.mark.slow

BASE_SEED = int(os.environ.get("RAYFLOW_CHAOS_SEED", "20261202"))
SOAK_S = float(os.environ.get("RAYFLOW_CHAOS_SECONDS", "0") or 0)
_STARTED = time.monotonic()


def plan() -> list[tuple[int, str, int]]:
    """(index, kind, seed) of every scenario: each kind once, in an order the seed shuffles,
    then kinds drawn at random."""
    rng = random.Random(BASE_SEED)
    first = list(KINDS)
    rng.shuffle(first)
    n = int(os.environ.get("RAYFLOW_CHAOS_SCENARIOS") or (1000 if SOAK_S else len(first)))
    kinds = (first + [rng.choice(list(KINDS)) for _ in range(max(0, n - len(first)))])[:n]
    return [(i, kind, BASE_SEED * 1000 + i) for i, kind in enumerate(kinds)]


PLAN = plan()


@pytest.fixture
def chaos_svc(service, tmp_path):
    yield service
    service.flush()
    service.configure(store=f"sqlite:///{tmp_path / 'after.db'}", checkpoints="", cache="memory://")


@pytest.mark.parametrize("entry", PLAN, ids=[f"{i}-{kind}" for i, kind, _ in PLAN])
def test_scenario(entry, request, ray_session, chaos_svc, tmp_path, monkeypatch):
    index, kind, seed = entry
    if SOAK_S and time.monotonic() - _STARTED > SOAK_S:
        pytest.skip(f"the chaos soak's {SOAK_S:g} s are spent")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        ctx, extra = _setup(stack, kind, seed, index, request, chaos_svc, tmp_path, monkeypatch)
        actors_before = set(chaos.live_actors())
        stack.callback(ctx.stop_all)
        try:
            KINDS[kind](ctx, *extra)
            problems = ctx.finish(actors_before)
        except BaseException as exc:
            exc.add_note(_replay(index, kind, seed))
            raise
    TALLY.scenarios += 1
    line = (f"scenario {index} {kind} (seed {seed}, {ctx.store.url.split(':')[0]}): {len(ctx.cases)} run(s), "
            f"{sum(len(c.dag['nodes']) for c in ctx.cases)} components, {time.monotonic() - started:.0f} s"
            f"{', ' + str(len(problems)) + ' violation(s)' if problems else ''} [{', '.join(ctx.phases)}]")
    TALLY.lines.append(line)
    print(line)
    known, unexplained = explain(kind, problems)
    assert not unexplained, "\n".join([f"chaos scenario {index} ({kind}) broke invariants:", *problems,
                                       _replay(index, kind, seed)])
    if known:
        pytest.xfail("known bugs: " + " | ".join(known) + " -- " + "; ".join(problems)[:1500])


def _replay(index: int, kind: str, seed: int) -> str:
    return (f"replay: RAYFLOW_CHAOS_SEED={BASE_SEED} RAYFLOW_CHAOS_SCENARIOS={max(index + 1, len(KINDS))} "
            f".venv/bin/python -m pytest "
            f"'tests/chaos/test_chaos.py::test_scenario[{index}-{kind}]'   (scenario seed {seed})")


def _setup(stack, kind, seed, index, request, svc, tmp_path, monkeypatch):
    """The scenario's store, checkpoint folder and services; what the kind's function takes."""
    import ray

    rng = random.Random(seed ^ 0x5EED)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    if kind != "postgres" and os.environ.get("RAYFLOW_CHAOS_STORE", rng.choice(("sqlite", "postgresql"))) != "sqlite":
        store = request.getfixturevalue("postgres_url")   # a schema of its own on the shared server
    ckpt = tmp_path / "checkpoints"
    extra: tuple = ()
    cache = "memory://"
    if kind == "postgres":
        from tests.support.pgserver import ThrowawayPostgres, server_bin_dir

        bin_dir = server_bin_dir()
        if bin_dir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        pg = ThrowawayPostgres(bin_dir)
        stack.callback(pg.remove)
        pg.start()
        store = f"{pg.url}?schema=rayflow&connect_timeout=2&acquire_timeout=2"
        extra = (pg,)
    elif kind == "redis":
        from tests.support.tiers import ThrowawayRedis

        server = ThrowawayRedis(free_port())
        stack.callback(server.kill)
        server.start()
        cache = f"memory://,{server.url}?cooldown=0.5&failures=3"
        extra = (server,)
    elif kind == "server":
        from tests.faults.test_server_failover import ServerProc

        extra = (ServerProc,)
    elif kind == "disk":
        ckpt = stack.enter_context(chaos.small_disk(tmp_path / "small-disk", "4m"))
    elif kind == "tracker":
        monkeypatch.setenv("RAYFLOW_TRACKER", "1")
        monkeypatch.setattr(svc.settings, "lease_s", scenarios.PAUSE_LEASE_S)
    svc.configure(store=store, checkpoints=str(ckpt), cache=cache)
    ctx = Ctx(index=index, kind=kind, seed=seed, tmp=tmp_path, svc=svc, ckpt_root=ckpt,
              address=ray.get_runtime_context().gcs_address)
    return ctx, extra
