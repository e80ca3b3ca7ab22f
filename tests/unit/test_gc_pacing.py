"""The owner spaces out young collections only while many tasks are pending, and gives the
program's thresholds back after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ember.runtime.core.gc_pacing import GcPacing


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_raised_over_high_and_restored_under_low() -> None:
    pacing = GcPacing(high=100, low=10, threshold=5_000)
    pacing.pending(100)
    assert gc.get_threshold() == (700, 10, 10)
    pacing.pending(101)
    assert gc.get_threshold() == (5_000, 10, 10)
    pacing.pending(50)  # between the marks: stays
    assert gc.get_threshold() == (5_000, 10, 10)
    pacing.pending(9)
    assert gc.get_threshold() == (700, 10, 10)
    assert not pacing.raised


def test_the_programs_own_choices_are_left_alone() -> None:
    pacing = GcPacing(high=100, low=10, threshold=5_000)
    gc.set_threshold(20_000, 10, 10)  # already spaced out further
    pacing.pending(1_000)
    assert gc.get_threshold() == (20_000, 10, 10) and not pacing.raised
    gc.set_threshold(700, 10, 10)
    pacing.pending(1_000)
    gc.set_threshold(3_000, 5, 5)  # the program changed it while the burst ran
    pacing.pending(0)
    assert gc.get_threshold() == (3_000, 5, 5)


def test_restore_on_shutdown_without_a_count() -> None:
    pacing = GcPacing(high=100, low=10, threshold=5_000)
    pacing.pending(1_000)
    pacing.restore()
    assert gc.get_threshold() == (700, 10, 10)
    pacing.restore()  # twice: harmless
    assert gc.get_threshold() == (700, 10, 10)
