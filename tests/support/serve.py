"""Run a rayflow server for a test, as its own process: ``python -m tests.support.serve``.

``--executor local`` drives components in the server's process (no Ray: a fault test
can SIGKILL it without leaving a cluster behind); ``ray`` joins ``--address``. Prints
``ready <server_id>`` once the HTTP port answers.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument("--address", default=None)
    parser.add_argument("--lease-s", type=float, default=2.0)
    parser.add_argument("--max-runs", type=int, default=64)
    parser.add_argument("--auth", default="none")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from rayflow.server.main import serve

    serve(host="127.0.0.1", port=args.port, address=args.address, store_url=args.store, auth=args.auth,
          max_runs=args.max_runs, lease_s=args.lease_s, executor=args.executor)


if __name__ == "__main__":
    main()
