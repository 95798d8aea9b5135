"""Run store: the port, its records, and adapters (memory fake, SQLite, PostgreSQL).

``open_store(url)`` is the one place a URL becomes an adapter.
"""

from rayflow.store.port import ComponentRecord, EventRecord, RunRecord, RunStore
from rayflow.store.urls import DEFAULT_STORE_URL, open_store

__all__ = ["ComponentRecord", "DEFAULT_STORE_URL", "EventRecord", "RunRecord", "RunStore", "open_store"]
