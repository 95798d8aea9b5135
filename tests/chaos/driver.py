"""A driver process for the chaos suite: joins the test's Ray cluster, starts one run of a
generated DAG (``--builder dsl``: ``flows.chaos_dag``; ``spec``: ``flows.chaos_spec``) under
the given run id, drives it in this process (not the cluster's tracker) and waits for it.
The scenarios SIGKILL it, or SIGSTOP it past its lease, at random instants."""

from __future__ import annotations

import argparse
import json
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("address", "store", "checkpoints", "folder", "dag", "run-id"):
        p.add_argument(f"--{name}", required=True)   # --dag: a JSON file holding the DAG
    p.add_argument("--builder", choices=("dsl", "spec"), default="dsl")
    args = p.parse_args()
    os.environ["RAYFLOW_TRACKER"] = "0"   # this process drives the run: killing it kills the driver

    import rayflow as rf
    from tests.chaos.flows import chaos_dag, chaos_spec

    with open(args.dag) as f:
        dag = json.load(f)
    rf.init(address=args.address, store=args.store, checkpoints=args.checkpoints)
    if args.builder == "spec":
        handle = rf.submit(chaos_spec(dag), run_id=args.run_id, folder=args.folder)
    else:
        handle = rf.submit(chaos_dag, run_id=args.run_id, folder=args.folder, dag=dag)
    print(f"driving {handle.run_id}", flush=True)
    status = handle.wait()
    print(f"{handle.run_id}: {status}", flush=True)
    return 0 if status == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
