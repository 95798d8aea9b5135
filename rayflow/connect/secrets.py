"""Secrets of connector components: ``{$secret: NAME}`` in a spec, ``rf.secret(NAME)`` in Python.

Owns the marker (a name, never a value), finding markers in a component's config, and
revealing them where the component runs: from the environment first, then from the
secrets file (``RAYFLOW_SECRETS_FILE``, default ``~/.rayflow/secrets``; ``NAME=value``
lines, ``#`` comments; it must not be readable by group or others). Only the name travels
in specs, the run store, events, logs and Ray's task arguments; a revealed value lives in
the worker's memory for the call, and ``scrub`` takes every revealed value out of a
message before it leaves the component. Pure: no I/O but the file, no ray.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayflow.core.config import home
from rayflow.core.errors import ConfigError
from rayflow.core.redact import MASK, secrets_of

MARKER = "$secret"
SECRETS_FILE_VAR = "RAYFLOW_SECRETS_FILE"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class SecretNotFound(ConfigError):
    """A secret named by a component is in neither the environment nor the secrets file."""


@dataclass(frozen=True)
class Secret:
    """A named secret, resolved where the component runs (``rf.secret("ORDERS_DB")``)."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(f"secret name {self.name!r}: expected letters, digits and '_' "
                              "(an environment variable's name)")

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"


def marker_name(value: Any) -> str | None:
    """The name in ``{$secret: NAME}`` or ``Secret(NAME)``; None for anything else."""
    if isinstance(value, Secret):
        return value.name
    if isinstance(value, dict) and len(value) == 1 and MARKER in value:
        name = value[MARKER]
        Secret(name)   # checks the name
        return name
    return None


def names_in(value: Any) -> list[str]:
    """Every secret named anywhere in ``value`` (dicts, lists, tuples), in first-seen order."""
    found: list[str] = []

    def walk(v: Any) -> None:
        name = marker_name(v)
        if name is not None:
            if name not in found:
                found.append(name)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)

    walk(value)
    return found


def secrets_file() -> Path:
    named = os.environ.get(SECRETS_FILE_VAR)
    return Path(named).expanduser() if named else home() / "secrets"


def _from_file(name: str) -> str | None:
    path = secrets_file()
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"secrets file {path}: readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                          f"chmod 600 {path}")
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key.strip().removeprefix("export ").strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return value
    return None


def lookup(name: str) -> str:
    """The value of secret ``name``: the environment, then the secrets file."""
    Secret(name)
    value = os.environ.get(name)
    if value is None:
        value = _from_file(name)
    if value is None:
        raise SecretNotFound(f"secret {name!r} is not set: export {name}=... where the component runs, "
                             f"or add '{name}=...' to {secrets_file()} (${SECRETS_FILE_VAR})")
    return value


class Revealed:
    """Secrets revealed for one call: ``reveal(value)`` swaps markers for values and
    remembers them, ``scrub(text)`` takes them out of any text again."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def reveal(self, value: Any) -> Any:
        name = marker_name(value)
        if name is not None:
            secret = lookup(name)
            self._values.add(secret)
            self._values.update(secrets_of(secret))   # a URL's password is a secret on its own
            return secret
        if isinstance(value, dict):
            return {k: self.reveal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.reveal(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.reveal(v) for v in value)
        return value

    def add(self, *values: str) -> None:
        """Treat ``values`` (and any password in them, read as URLs) as secrets too."""
        for v in values:
            if v:
                self._values.add(v)
                self._values.update(secrets_of(v))

    def scrub(self, text: str) -> str:
        for secret in sorted((s for s in self._values if len(s) >= 3), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text
