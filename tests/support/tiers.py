"""Helpers for the cache tests: a tier of each kind, and a throwaway Redis server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from rayflow.cache.port import CacheTier


def make_tier(kind: str, request: pytest.FixtureRequest, tmp_path) -> CacheTier:
    if kind == "memory":
        from rayflow.cache.memory import MemoryTier

        return MemoryTier(64 * 1024 * 1024)
    if kind == "redis":
        from rayflow.cache.redis_tier import RedisTier

        return RedisTier(request.getfixturevalue("redis_url"), namespace=request.getfixturevalue("redis_namespace"))
    if kind in ("sqlite", "postgresql"):   # the run store's cache_entries table
        from rayflow.cache.store_tier import StoreTier
        from rayflow.store import open_store

        url = f"sqlite:///{tmp_path / 'runs.db'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")
        return StoreTier(open_store(url), name=kind)
    from rayflow.cache.files import FileTier

    if kind == "objectstore":          # a non-local pyarrow filesystem: no temp + rename
        import uuid

        import pyarrow.fs as pafs

        fsspec = pytest.importorskip("fsspec")
        filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("memory")))
        return FileTier(f"/cache-{uuid.uuid4().hex}", filesystem=filesystem)
    return FileTier(str(tmp_path / "cache"))






class ThrowawayRedis:
    """A ``redis-server`` of this test's own on ``port`` (no persistence), started and
    SIGKILLed by the test; ``stop`` is safe to call twice, and in a finally."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout_s:g}s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()           # SIGKILL
            self.proc.wait(timeout=10)
        self.proc = None
