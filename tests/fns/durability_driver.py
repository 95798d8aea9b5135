"""A driver process for the fault tests: joins the test's Ray cluster, starts one run of
``ledgered`` (driven in this process, not by the cluster's tracker), prints its run id,
and waits for it. The tests SIGKILL it mid-run."""

from __future__ import annotations

import argparse
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--checkpoints", required=True)
    p.add_argument("--folder", required=True)
    p.add_argument("--n", type=int, default=4)
    args = p.parse_args()
    os.environ["RAYFLOW_TRACKER"] = "0"   # this process drives the run: killing it kills the driver

    import rayflow as rf
    from tests.fns.durability import ledgered

    rf.init(address=args.address, store=args.store, checkpoints=args.checkpoints)
    handle = rf.submit(ledgered, folder=args.folder, n=args.n)
    print(handle.run_id, flush=True)
    handle.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
