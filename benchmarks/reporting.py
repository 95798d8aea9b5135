"""What every benchmark writes: the machine it ran on, and its JSON report."""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
from pathlib import Path

import pyarrow as pa
import ray


def machine() -> dict:
    return {
        "hostname": socket.gethostname(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "pyarrow": pa.__version__,
        "platform": platform.platform(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),   # the machine is shared: say how busy
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(out: Path, report: dict) -> None:
    """Write ``report`` (with the machine) as JSON to ``out`` and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "machine": machine()}, indent=2) + "\n")
    print(f"\nwrote {out}")
