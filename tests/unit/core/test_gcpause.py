"""gcpause: pausing the collector around bursts in every process unless RAYFLOW_GC=off, and
freezing the long-lived objects once, only in processes rayflow owns or where RAYFLOW_GC
asks for it."""

from __future__ import annotations

import gc

import pytest

from rayflow.core import gcpause


@pytest.fixture
def fresh(monkeypatch):
    """A process rayflow does not own, nothing frozen yet, no RAYFLOW_GC* set."""
    monkeypatch.setattr(gcpause, "_owned", False)
    monkeypatch.setattr(gcpause, "_frozen", False)
    monkeypatch.delenv(gcpause.GC_ENV_VAR, raising=False)
    monkeypatch.delenv(gcpause.FREEZE_ENV_VAR, raising=False)
    return monkeypatch


def test_a_users_process_pauses_but_never_freezes_by_default(fresh):
    assert not gcpause.tuning() and gcpause.pausing()
    with gcpause.paused():
        assert not gc.isenabled()   # bounded: the step only
    assert gc.isenabled()
    before = gc.get_freeze_count()
    assert gcpause.freeze_once() is False
    assert gc.get_freeze_count() == before


def test_a_pause_leaves_a_collector_the_user_turned_off_off(fresh):
    gc.disable()
    try:
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_off_leaves_the_collector_alone(fresh):
    fresh.setenv(gcpause.GC_ENV_VAR, "off")
    assert not gcpause.pausing()
    with gcpause.paused():
        assert gc.isenabled()


def test_paused_turns_the_collector_off_and_back_on_nested(fresh):
    fresh.setenv(gcpause.GC_ENV_VAR, "tune")
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_owned_process_tunes_unless_turned_off(fresh):
    gcpause.own_process()
    assert gcpause.tuning()
    with gcpause.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    fresh.setenv(gcpause.GC_ENV_VAR, "off")
    assert not gcpause.tuning() and not gcpause.pausing()
    with gcpause.paused():
        assert gc.isenabled()
    fresh.setenv(gcpause.GC_ENV_VAR, "bogus")   # not a mode: ownership decides
    assert gcpause.tuning()


def test_freeze_once_freezes_once_and_can_be_turned_off(fresh):
    fresh.setenv(gcpause.GC_ENV_VAR, "tune")
    fresh.setenv(gcpause.FREEZE_ENV_VAR, "0")
    assert gcpause.freeze_once() is False
    fresh.delenv(gcpause.FREEZE_ENV_VAR)
    before = gc.get_freeze_count()
    try:
        assert gcpause.freeze_once() is True
        assert gc.get_freeze_count() > before
        assert gcpause.freeze_once() is False   # once per process
    finally:
        gc.unfreeze()
