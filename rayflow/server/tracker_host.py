"""The tracker's host: a small driver process that creates the cluster's tracker actor and
lives as long as the actor does (``python -m rayflow.server.tracker_host``).

Why a process of its own: the tasks an actor submits belong to the Ray job that created
the actor, and Ray ends a finished job's idle workers at once. A tracker created by the
script that submitted the first run (which then exits, as scripts do) has every
component task of every later run start a fresh worker process: 300 tiny tasks took 10-12 s
instead of 2-3 s on a two-core machine. Created by this host, the tracker's job lives on.

``tracker()`` (rayflow.server.tracker) starts the host on first use, in a session of its
own (so it outlives the submitter, a ``ray job submit`` job included), on the submitter's
machine (so the tracker is placed on that node, as before: a SQLite store path means the
same file), with the submitter's environment, working directory and job runtime_env.
The host exits when the tracker is killed, when another job created the tracker, or when
the cluster goes away. ``RAYFLOW_TRACKER_HOST=0``: no host, the submitter creates the
tracker (the old behaviour). Its output goes to ``$RAYFLOW_HOME/logs/tracker-host.log``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time

POLL_S = 5.0     # how often the host checks that the tracker still exists
GCS_POLL_S = 1.0  # how often it checks that the cluster's GCS still answers


def _watch_gcs(address: str) -> None:
    """Exit at once when the GCS stops answering (the cluster was stopped): Ray's own
    driver would retry for a minute, busy, before it gave up."""
    host, _, port = address.rpartition(":")
    misses = 0
    while True:
        time.sleep(GCS_POLL_S)
        try:
            socket.create_connection((host, int(port)), timeout=GCS_POLL_S).close()
            misses = 0
        except OSError:
            misses += 1
            if misses >= 3:
                print("rayflow tracker host: the cluster stopped answering; exiting", flush=True)
                os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rayflow.server.tracker_host",
                                     description="Create the cluster's rayflow tracker and host its Ray job.")
    parser.add_argument("--address", required=True, help="the Ray cluster (GCS address)")
    parser.add_argument("--node", required=True, help="the node the tracker is placed on (soft)")
    args = parser.parse_args(argv)

    import ray  # (Ray's token auth mode comes with the submitter's environment)

    from rayflow.server import tracker as tracking

    runtime_env = json.loads(os.environ.pop(tracking.HOST_ENV_VAR, "") or "{}") or None
    ray.init(address=args.address, namespace=tracking.NAMESPACE, runtime_env=runtime_env, logging_level=logging.WARNING)
    threading.Thread(target=_watch_gcs, args=(args.address,), name="rayflow-gcs-watch", daemon=True).start()
    actor = tracking.create_tracker(args.node)
    if ray.get(actor.job_id.remote()) != ray.get_runtime_context().get_job_id():
        print("rayflow tracker host: another job created the tracker; nothing to host", flush=True)
        return 0
    print(f"rayflow tracker host: hosting the tracker (job {ray.get_runtime_context().get_job_id()})", flush=True)
    while True:
        time.sleep(POLL_S)
        try:
            ray.get_actor(tracking.NAME, namespace=tracking.NAMESPACE)
        except ValueError:
            print("rayflow tracker host: the tracker is gone; exiting", flush=True)
            return 0
        except Exception as exc:  # noqa: BLE001 - the cluster went away
            print(f"rayflow tracker host: lost the cluster ({type(exc).__name__}); exiting", flush=True)
            return 1


if __name__ == "__main__":
    sys.exit(main())
