"""The SQLite run-store schema: its versioned migrations, applied by ``SqliteStore``.

Owns the tables and indexes of a SQLite store file (the row codec and the statements are in
``rayflow.store.sqlrows``). Must not open a connection; plain SQL text.
"""

from __future__ import annotations

# Ordered migration steps: (version, statements). Append new steps; never edit old ones.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at REAL NOT NULL,
                started_at REAL,
                ended_at REAL,
                target TEXT NOT NULL DEFAULT '',
                inputs TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                owner TEXT NOT NULL DEFAULT '',
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                n_components INTEGER NOT NULL DEFAULT 0,
                summary TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX runs_status_created ON runs (status, created_at)",
            "CREATE INDEX runs_created ON runs (created_at)",
            """CREATE TABLE components (
                run_id TEXT NOT NULL,
                component_id TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                submitted_at REAL,
                started_at REAL,
                ended_at REAL,
                queued_s REAL,
                duration_s REAL,
                node_id TEXT,
                worker_id TEXT,
                resources TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                cached INTEGER NOT NULL DEFAULT 0,
                upstream TEXT NOT NULL DEFAULT '[]',
                PRIMARY KEY (run_id, component_id)
            )""",
            """CREATE TABLE events (
                run_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                ts REAL NOT NULL,
                kind TEXT NOT NULL,
                component_id TEXT,
                data TEXT NOT NULL DEFAULT '{}',
                PRIMARY KEY (run_id, seq)
            )""",
        ),
    ),
    (
        2,
        (  # what a component used, measured in the worker
            "ALTER TABLE components ADD COLUMN cpu_s REAL",
            "ALTER TABLE components ADD COLUMN peak_rss_bytes INTEGER",
            "CREATE INDEX components_component_ended ON components (component_id, ended_at)",
        ),
    ),
    (
        3,
        (  # no query used it, and every component update moved its entry (ended_at changes):
           # it doubled the cost of writing a row
            "DROP INDEX IF EXISTS components_component_ended",
        ),
    ),
    (
        4,
        (  # the lease of the process driving a run (resume takes over a stale one)
            "ALTER TABLE runs ADD COLUMN heartbeat_at REAL",
        ),
    ),
    (
        5,
        (  # the result cache's store tier
            """CREATE TABLE cache_entries (
                key TEXT PRIMARY KEY,
                data BLOB NOT NULL,
                expires_at REAL,
                stored_at REAL NOT NULL
            )""",
        ),
    ),
    (
        6,
        (  # what the resource model learns from, per component attempt
            "ALTER TABLE components ADD COLUMN features TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
    (
        7,
        (  # what a call reported beyond its timings (a dynamic map's per-item outcomes)
            "ALTER TABLE components ADD COLUMN outcome TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
    (
        8,
        (  # fenced leases (any server drives any run) and the server's own records
            "ALTER TABLE runs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE runs ADD COLUMN spec TEXT NOT NULL DEFAULT '{}'",
            # claim_next: the few runs it may take, oldest first (the predicate is claim_next's,
            # word for word: SQLite uses a partial index only for a WHERE that repeats it)
            "CREATE INDEX runs_claimable ON runs (created_at, run_id) WHERE status IN ('PENDING', 'RUNNING') "
            "AND (spec != '{}' OR (target != '' AND substr(target, 1, 9) != '__main__:'))",
            # list_runs_page, newest first by the whole key (runs_created ends at created_at),
            # and one workflow's runs; neither column changes after the insert
            "CREATE INDEX runs_created_id ON runs (created_at, run_id)",
            "CREATE INDEX runs_name_created ON runs (name, created_at, run_id)",
            """CREATE TABLE tokens (
                token_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                scope TEXT NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                created_at REAL NOT NULL,
                revoked_at REAL
            )""",
            """CREATE TABLE idempotency (
                key TEXT PRIMARY KEY,
                body_hash TEXT NOT NULL,
                run_id TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
            """CREATE TABLE workflows (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL DEFAULT '{}',
                target TEXT NOT NULL DEFAULT '',
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            """CREATE TABLE servers (
                server_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                host TEXT NOT NULL DEFAULT '',
                pid INTEGER NOT NULL DEFAULT 0,
                started_at REAL NOT NULL,
                heartbeat_at REAL,
                info TEXT NOT NULL DEFAULT '{}'
            )""",
        ),
    ),
    (
        9,
        (  # learned models (the resource model), kept with the history they learned from
            """CREATE TABLE models (
                name TEXT PRIMARY KEY,
                blob BLOB NOT NULL,
                saved_at REAL NOT NULL
            )""",
        ),
    ),
    (
        10,
        (  # a failed component's traceback (the user's frames first)
            "ALTER TABLE components ADD COLUMN traceback TEXT",
        ),
    ),
    (
        11,
        (  # runs_created (created_at) is a prefix of runs_created_id, which serves its queries
           # (found by `rayflow db advise --store`)
            "DROP INDEX IF EXISTS runs_created",
        ),
    ),
]
