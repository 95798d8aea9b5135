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


KNOWN_BUGS = {
    "temp-files": Known(
        "a checkpoint write killed mid-way leaves its <id>.rfc.tmp-<hex>; the run's resume does not remove it "
        "(only `rayflow gc`, an hour later)", ("temp file(s) left under the checkpoints",)),
    "unfenced-after-loss": Known(
        "StoreWriter._lost drops a lost run's fence, so the old driver's later rows and events (its CANCELLED "
        "ones) land unfenced, on the new owner's seqs, whose own events are then ignored",
        ("last run_state event says", "events after the run's SUCCEEDED", "outside a driving segment",
         "written twice under different seqs", "event seqs not"), ("pause",)),
    "unfenced-checkpoints": Known(
        "a driver whose lease was taken over still writes inline checkpoints (RunRecorder._save_outputs is not "
        "fenced): a second committed result of a component the new owner also runs",
        ("more than one committed result", "started again after their checkpoint was written"), ("pause",)),
    "starts-after-loss": Known(
        "a driver woken after its lease lapsed submits the next components before its lease keeper notices "
        "the take-over (nothing checks the lease's age before submitting)",
        ("started components after its lease was taken over",), ("pause",)),
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
