import gc
import threading

from rayflow import gcpause


def test_paused_turns_collection_off_and_back_on():
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_and_concurrent_pauses_restore_only_at_the_last_exit():
    inner_entered, release = threading.Event(), threading.Event()

    def other():
        with gcpause.paused():
            inner_entered.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with gcpause.paused():
        t.start()
        inner_entered.wait(5)
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert not gc.isenabled()   # the other thread still holds its pause
    release.set()
    t.join(5)
    assert gc.isenabled()


def test_a_collector_the_user_turned_off_stays_off():
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_still_restores_collection():
    try:
        with gcpause.paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()
