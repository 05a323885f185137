"""The codec threads' garbage-collector pause (course_lib.serving.collector)."""

import gc
import threading

import pytest

from course_lib.serving.collector import paused


@pytest.fixture(autouse=True)
def collector_on_again():
    yield
    gc.enable()


def test_the_collector_is_off_during_the_work_and_on_after_it():
    assert paused(gc.isenabled)() is False
    assert gc.isenabled()


def test_an_error_in_the_work_still_turns_the_collector_back_on():
    def fail():
        raise ValueError("bad body")

    with pytest.raises(ValueError):
        paused(fail)()
    assert gc.isenabled()


def test_overlapping_works_keep_it_off_until_the_last_one_ends():
    first_inside, release_first = threading.Event(), threading.Event()
    seen = {}

    def long_work():
        first_inside.set()
        release_first.wait(10)
        seen["long, at its end"] = gc.isenabled()

    thread = threading.Thread(target=paused(long_work))
    thread.start()
    first_inside.wait(10)
    paused(lambda: None)()  # a short work starts and ends inside the long one
    seen["after the short one"] = gc.isenabled()
    release_first.set()
    thread.join(10)
    assert seen == {"after the short one": False, "long, at its end": False}
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_stays_off():
    gc.disable()
    paused(lambda: None)()
    assert not gc.isenabled()
