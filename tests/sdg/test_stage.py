"""The sdg job's reading of where a leaf lost everything."""

from __future__ import annotations

import pytest

from bots import messages
from workers.sdg.records import StepCount
from workers.sdg.stage import likely_cause


@pytest.mark.parametrize(
    ("counts", "cause"),
    [
        ([StepCount("qa", generated=0, kept=0, skipped=4)], messages.SDG_CAUSE_CONTEXT),
        ([StepCount("questions", generated=12, kept=0)], messages.SDG_CAUSE_UNREADABLE),
        ([StepCount("questions", generated=0, kept=0)], messages.SDG_CAUSE_UNREADABLE),
        (
            [StepCount("questions", 12, 5), StepCount("question_judge", 5, 0)],
            messages.SDG_CAUSE_FILTERED,
        ),
        (
            [StepCount("questions", 12, 5), StepCount("pair_judge", 5, 0, skipped=2)],
            messages.SDG_CAUSE_FILTERED,
        ),
    ],
)
def test_likely_cause_follows_where_the_counts_fell_to_zero(
    counts: list[StepCount], cause: str
) -> None:
    assert likely_cause(counts) == cause
