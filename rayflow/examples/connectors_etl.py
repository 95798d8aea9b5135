"""An ETL pipeline on connectors: PostgreSQL -> a batch transform -> HTTP enrichment -> PostgreSQL.

The day's orders are read from PostgreSQL as Arrow batches, cleaned by a batch stage,
scored by an HTTP endpoint 100 orders per request (rate-limited, retried, behind a
circuit breaker), and the scores upserted into ``order_scores``. The four components run
as one stream: batches flow through while the next ones are read, so memory follows the
batch size, not the table. The database URL is a secret (``ORDERS_DB``), resolved where
the components run; the spec only names it.

Try it on a machine with PostgreSQL::

    export ORDERS_DB=postgresql://postgres@127.0.0.1:5432/test
    python -m rayflow.examples.connectors_etl setup        # the tables, with a day of orders
    python -m rayflow.examples.connectors_etl serve &      # a demo scoring endpoint on :8471
    rayflow run rayflow/examples/connectors_etl.yaml -i day=2026-12-01

``pipeline`` is the same workflow in Python (``rayflow run rayflow.examples.connectors_etl:pipeline``).
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.compute as pc

import rayflow as rf

SCORE_URL = "http://127.0.0.1:8471/score"


def clean(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Orders with a positive amount, as the scoring endpoint's items (id, x)."""
    keep = batch.filter(pc.greater(batch.column("amount"), 0))
    return pa.RecordBatch.from_arrays([keep.column("id"), pc.cast(keep.column("amount"), pa.float64())],
                                      names=["id", "x"])


@rf.workflow(name="orders_etl")
def pipeline(day: str = "2026-12-01", score_url: str = SCORE_URL):
    db = rf.secret("ORDERS_DB")
    orders = rf.sql(db, "SELECT id, customer, amount::float8 AS amount FROM orders WHERE day = $1::date ORDER BY id",
                    params=[day], id="orders", batch_size=5000)
    items = rf.component(clean, kind="batch", id="clean")(orders)
    scored = rf.http("POST", score_url, items, batch_size=100, stream=True, rate_limit={"per_second": 200},
                     retry={"retries": 5}, retry_unsafe=True, breaker={"failures": 5, "reset_s": 10}, id="enrich")
    return rf.sql(db, table="order_scores", mode="upsert", key=["id"], data=scored, id="scores")


SETUP = [
    "CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, customer int, day date, amount numeric(12, 2))",
    "CREATE TABLE IF NOT EXISTS order_scores (id bigint PRIMARY KEY, score double precision)",
    "INSERT INTO orders SELECT g, g % 97, DATE '2026-12-01', (g % 50) - 5 FROM generate_series(1, 20000) g "
    "ON CONFLICT (id) DO NOTHING",
]


def setup() -> None:
    for statement in SETUP:
        rf.sql(rf.secret("ORDERS_DB"), statement, mode="execute")


class _Scorer(BaseHTTPRequestHandler):
    """POST /score: a JSON list of {"id", "x"} -> the list of {"id", "score"} (HTTP/1.1,
    so a client keeps its connection)."""

    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16                  # the answer in one write, headers and body together ...
    disable_nagle_algorithm = True      # ... and sent at once (no 40 ms delayed-ACK stall per request)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        items = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"[]")
        body = json.dumps([{"id": i["id"], "score": round(i["x"] * 0.9 + 1.0, 4)} for i in items]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve(port: int = 8471) -> ThreadingHTTPServer:
    """The demo scoring endpoint on 127.0.0.1:``port`` (serve_forever() to run it)."""
    return ThreadingHTTPServer(("127.0.0.1", port), _Scorer)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "setup":
        setup()
        print("tables orders and order_scores ready")
    elif command == "serve":
        print(f"scoring endpoint at {SCORE_URL}")
        serve().serve_forever()
    else:
        sys.exit("usage: python -m rayflow.examples.connectors_etl setup|serve")
