"""Honest timings: a timing taken while the machine is busy is taken again, and the quietest
attempt is kept; one still busy comes back flagged with the reason, never as a clean figure.
The machine's state is given through the reference ratio here, so that these tests do not
depend on how busy the machine running them is."""

from __future__ import annotations

import math

import pytest

from nas.export import REFERENCE_TOLERANCE, WAITED_MAX, Conditions, timed_quietly


def test_conditions_say_why_a_timing_is_busy():
    assert Conditions(0.0).busy is None
    assert Conditions(math.nan, 1.0).busy is None  # no schedstat: only the reference speaks
    assert "waited for a CPU 35%" in Conditions(0.35).busy
    assert "reference layers ran 1.30x" in Conditions(0.0, 1.3).busy
    both = Conditions(WAITED_MAX * 2, 1 + REFERENCE_TOLERANCE * 3)
    assert "waited" in both.busy and "reference" in both.busy
    assert both.severity() == pytest.approx(3.0)
    assert Conditions(0.0, 0.8).busy is None  # faster than the table is not busy
    assert Conditions(0.0, 1.3).describe().startswith("busy (")


def test_a_busy_timing_is_taken_again_until_the_machine_is_quiet():
    ratios = iter([1.6, 1.3, 1.02, 1.0])
    calls = []

    def timing():
        calls.append(next(ratios))
        return calls[-1]

    result, conditions = timed_quietly(timing, ratio=lambda r: r, attempts=3, pause_s=0)
    assert calls == [1.6, 1.3, 1.02] and result == 1.02
    assert conditions.busy is None and conditions.attempts == 3


def test_a_timing_busy_in_every_attempt_keeps_the_quietest_and_is_flagged(caplog):
    ratios = iter([1.6, 1.25, 1.4])
    result, conditions = timed_quietly(
        lambda: next(ratios), ratio=lambda r: r, attempts=3, pause_s=0, what="model.tflite"
    )
    assert result == 1.25 and conditions.reference_ratio == 1.25 and conditions.attempts == 3
    assert "reference layers ran 1.25x" in conditions.busy
    assert "model.tflite was timed on a busy machine" in caplog.text
