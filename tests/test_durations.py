from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiced.durations import DurationError, format_duration, format_iso8601, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT40M", 2400),
        ("PT1M", 60),
        ("P1DT2H", 93600),
        ("PT1.5S", 1.5),
        ("P1W", 604800),
        ("pt5m", 300),
        ("40m", 2400),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2d 4h", 187200),
        ("90s", 90),
        ("2d", 172800),
        ("500ms", 0.5),
        (" 5m ", 300),
        (300, 300),
        (1.5, 1.5),
    ],
)
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["", "P", "PT", "P1Y", "P1M", "5 minutes", "m5", "1h 30", "5x", "-5m", -1, True, None, [1]],
)
def test_rejects(text: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_error_says_what_is_accepted() -> None:
    with pytest.raises(DurationError, match=r'"40m".*"PT40M"'):
        parse_duration("forty minutes")


@given(st.integers(min_value=0, max_value=10**9))
def test_short_form_round_trips(ms: int) -> None:
    d = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(d)) == d


@given(st.integers(min_value=0, max_value=10**7))
def test_iso_form_round_trips(s: int) -> None:
    d = timedelta(seconds=s)
    assert parse_duration(format_iso8601(d)) == d


def test_iso_examples() -> None:
    assert format_iso8601(timedelta(minutes=40)) == "PT40M"
    assert format_iso8601(timedelta(0)) == "PT0S"
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"


@pytest.mark.parametrize("text", ["P1M", "P1Y", "P1Y2M", "P2MT3H"])
def test_months_and_years_are_not_durations(text: str) -> None:
    with pytest.raises(DurationError, match="years and months are not durations"):
        parse_duration(text)


@pytest.mark.parametrize(
    "value",
    [float("inf"), float("nan"), 1e300, "99999999999d", "P99999999999D", 10**20],
)
def test_huge_durations_are_refused_not_overflowing(value: object) -> None:
    """Once an OverflowError (a traceback from the CLI and the config loader)."""
    with pytest.raises(DurationError, match=r"too long for a duration|not a finite duration"):
        parse_duration(value)
