"""Connectors: SQL and HTTP components, their secrets, pools, retries and limits, and the
query and index advisor (docs/connectors.md).

Everything here runs where a connector component runs (a Ray worker, or the driver with
the local executor) or in the CLI (the advisor); no module here imports ray. Each driver
is imported in one module: the SQL drivers in ``rayflow.connect.sql.drivers``, httpx in
``rayflow.connect.http.client``.
"""
