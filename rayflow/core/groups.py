"""Groups: named sets of components with their own ``max_concurrency`` and failure strategy.

A group is a plain frozen value of the plan; both front ends make them (``rf.group`` /
``rf.fan_out`` while tracing, a ``groups:`` block in a spec) and the run state enforces
them (``rayflow.execute.state`` documents the exact semantics). Owns the ``Group``
value and its checks: names, bounds, strategies, members that exist, and that no
component belongs to two groups. Pure; no Ray.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rayflow.core.errors import SpecError, UnknownComponentError
from rayflow.core.options import FAILURE_STRATEGIES


@dataclass(frozen=True)
class Group:
    """``members`` (component ids) run at most ``max_concurrency`` at once (None: no bound
    of their own) and fail by ``failure_strategy`` (None: the run's)."""

    name: str
    members: tuple[str, ...] = ()
    max_concurrency: int | None = None
    failure_strategy: str | None = None

    def __post_init__(self) -> None:
        check_group_options(self.name, self.max_concurrency, self.failure_strategy)

    def to_dict(self) -> dict:
        return {"name": self.name, "members": list(self.members), "max_concurrency": self.max_concurrency,
                "failure_strategy": self.failure_strategy}


def check_group_options(name: object, max_concurrency: object, failure_strategy: object) -> None:
    """Raise SpecError naming the group and the field when an option is out of range."""
    if not isinstance(name, str) or not name:
        raise SpecError(f"group name: expected a non-empty string, got {name!r}")
    mc = max_concurrency
    if mc is not None and (isinstance(mc, bool) or not isinstance(mc, int) or mc < 1):
        raise SpecError(f"group {name!r} field 'max_concurrency': expected an integer >= 1 or None, got {mc!r}")
    if failure_strategy is not None and failure_strategy not in FAILURE_STRATEGIES:
        raise SpecError(f"group {name!r} field 'failure_strategy': expected one of "
                        f"{', '.join(FAILURE_STRATEGIES)} or None (the run's), got {failure_strategy!r}")


def check_groups(groups: Iterable[Group], ids: Mapping[str, object]) -> tuple[Group, ...]:
    """The groups, checked against the workflow's component ``ids``: unique names, known
    members, each component in one group at most."""
    out: list[Group] = []
    owner: dict[str, str] = {}
    names: set[str] = set()
    for group in groups:
        if group.name in names:
            raise SpecError(f"two groups are named {group.name!r}; give each group its own name")
        names.add(group.name)
        for member in group.members:
            if member not in ids:
                raise UnknownComponentError(f"group {group.name!r} names unknown component {member!r}",
                                            component=member)
            if member in owner:
                raise SpecError(f"component {member!r} is in two groups ({owner[member]!r} and "
                                f"{group.name!r}); a component belongs to one group at most", component=member)
            owner[member] = group.name
        out.append(group)
    return tuple(out)


__all__ = ["Group", "check_group_options", "check_groups"]
