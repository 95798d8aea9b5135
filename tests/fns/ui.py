"""Workflows for the web UI's browser test, registered as specs (importable by any worker)."""

from __future__ import annotations

ETL = {"name": "ui-etl", "description": "prints, logs, doubles",
       "inputs": {"x": 1, "label": "nightly"},
       "components": [{"id": "talk", "function": "tests.fns.logs:chatty", "config": {"x": {"$input": "x"}}},
                      {"id": "double", "function": "tests.fns.logs:quiet"}],
       "connections": [{"from": "talk", "to": "double"}]}
BROKEN = {"name": "ui-broken", "inputs": {"x": 1},
          "components": [{"id": "first", "function": "tests.fns.logs:quiet", "config": {"x": {"$input": "x"}}},
                         {"id": "lookup", "function": "tests.fns.logs:fails_loudly"}],
          "connections": [{"from": "first", "to": "lookup"}]}
SLOW = {"name": "ui-slow", "inputs": {"seconds": 30.0},
        "components": [{"id": "ticker", "function": "tests.fns.logs:slow_talker",
                        "config": {"seconds": {"$input": "seconds"}}},
                       {"id": "after", "function": "tests.fns.logs:quiet"}],
        "connections": [{"from": "ticker", "to": "after"}]}
WORKFLOWS = (ETL, BROKEN, SLOW)
