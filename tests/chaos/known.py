"""Bugs the chaos suite found that are not fixed yet, each with a one-line reason and the
violations it shows as. A scenario whose every violation is a known bug xfails with those
reasons; a violation no known bug explains fails it. tests/chaos/test_found.py reproduces
each bug deterministically (strict xfail): once one is fixed there, remove it here too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    reason: str
    marks: tuple[str, ...]            # a violation containing one of these is this bug's
    kinds: tuple[str, ...] = ()       # the scenario kinds it shows in (empty: any)

    def explains(self, kind: str, violation: str) -> bool:
        return (not self.kinds or kind in self.kinds) and any(m in violation for m in self.marks)


KNOWN_BUGS: dict[str, Known] = {
    # none open: the four found so far (unfenced rows after a lost lease, unfenced inline
    # checkpoints, a woken driver submitting past its lease, a killed write's temp file)
    # are fixed, and tests/chaos/test_found.py keeps each reproduction as a plain test
}


def explain(kind: str, problems: list[str]) -> tuple[list[str], list[str]]:
    """The reasons of the known bugs behind ``problems``, and the problems none explains."""
    reasons, unexplained = [], []
    for p in problems:
        found = [k for k, bug in KNOWN_BUGS.items() if bug.explains(kind, p)]
        if found:
            reasons += [f"{k}: {KNOWN_BUGS[k].reason}" for k in found if f"{k}: {KNOWN_BUGS[k].reason}" not in reasons]
        else:
            unexplained.append(p)
    return reasons, unexplained
