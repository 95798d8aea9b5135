"""gcpause: pausing the collector around bursts, and freezing the long-lived objects once."""

from __future__ import annotations

import gc

from rayflow.core import gcpause


def test_paused_turns_the_collector_off_and_back_on_nested():
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_freeze_once_freezes_once_and_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(gcpause, "_frozen", False)
    monkeypatch.setenv(gcpause.FREEZE_ENV_VAR, "0")
    assert gcpause.freeze_once() is False
    monkeypatch.delenv(gcpause.FREEZE_ENV_VAR)
    before = gc.get_freeze_count()
    try:
        assert gcpause.freeze_once() is True
        assert gc.get_freeze_count() > before
        assert gcpause.freeze_once() is False   # once per process
    finally:
        gc.unfreeze()
