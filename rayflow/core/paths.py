"""Names that become paths: run ids, and any id turned into one file or folder name.

Every path rayflow builds from an id (cache entries, checkpoints, logs) goes through
``path_name``, so it stays under its root whatever the id holds: ``..``, ``/``, a NUL, a
leading dot, an empty string or 10,000 characters. Run ids are also checked where they
enter (``check_run_id``): the API, the CLI and the HTTP API accept only ``RUN_ID_PATTERN``.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, unquote

from rayflow.core.errors import SpecError

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)
EMPTY_NAME = "%"          # an empty part (no quote() output is a lone '%')
MAX_NAME = 200            # longer names are stored under their sha256 ("%~<hex>"), one way


def check_run_id(run_id: str, *, field: str = "run_id") -> str:
    """``run_id`` when it is a valid run id; else SpecError naming the rule."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or run_id.endswith("."):
        shown = repr(run_id)[:80]
        raise SpecError(f"{field} {shown} is not a valid run id: expected 1-128 letters, digits, '_', '-' or '.', "
                        "starting with a letter or digit and not ending with '.'")
    return run_id


def path_name(part: str) -> str:
    """One file or folder name for ``part``: never ``.``, ``..``, empty, hidden or holding a
    separator; reversible with ``from_path_name`` unless hashed (longer than MAX_NAME)."""
    quoted = quote(part.encode("utf-8", "surrogatepass"), safe="")   # keeps letters, digits and "_.-~"
    if quoted.startswith("."):
        quoted = "%2E" + quoted[1:]     # '.', '..' and hidden (or temporary-looking) names
    if not quoted:
        return EMPTY_NAME
    return quoted if len(quoted) <= MAX_NAME else "%~" + hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()


def from_path_name(name: str) -> str:
    """The part ``path_name`` made ``name`` from (a hashed name comes back as itself)."""
    return "" if name == EMPTY_NAME else unquote(name, errors="surrogatepass")
