"""The helpers at the bottom of the package: one boolean vocabulary, times, URLs."""

from __future__ import annotations

import pytest

from yolowatch._util import (
    FALSE_WORDS,
    TRUE_WORDS,
    floor_to,
    http_url,
    iso_time,
    parse_bool,
    parse_time,
    redacted_url,
    shown_db,
)


@pytest.mark.parametrize("word", sorted(TRUE_WORDS | {"TRUE", " On ", "Yes"}))
def test_true_words(word: str) -> None:
    """Every spelling of yes reads as True, whatever its case and surrounding spaces."""
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", sorted(FALSE_WORDS | {"FALSE", " Off "}))
def test_false_words(word: str) -> None:
    """Every spelling of no reads as False."""
    assert parse_bool(word) is False


@pytest.mark.parametrize("word", ["maybe", "", "2", "t", "enabled"])
def test_other_words_are_refused_with_the_vocabulary(word: str) -> None:
    """Anything else is a ValueError that lists what is accepted."""
    with pytest.raises(ValueError, match="true/false, 1/0, yes/no or on/off"):
        parse_bool(word)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-11-01T00:00:00Z", 1_793_491_200),  # the example the error message gives: 3.10 refused the Z
        ("2026-11-01T00:00:00z", 1_793_491_200),
        ("2026-11-01T01:00:00+01:00", 1_793_491_200),
        ("2026-11-01T00:00:00", 1_793_491_200),  # no zone: UTC
        ("2026-11-01", 1_793_491_200),
        ("1793491200", 1_793_491_200),
        (1_793_491_200, 1_793_491_200),
    ],
)
def test_times_parse_on_every_python(text: str | int, epoch: int) -> None:
    """Regression (Python 3.10's fromisoformat refuses a trailing Z): ISO 8601 with Z, offsets, or none."""
    assert parse_time(text) == epoch


def test_a_bad_time_says_what_to_give() -> None:
    """A time that is neither epoch seconds nor ISO 8601 is refused with an example."""
    with pytest.raises(ValueError, match="2026-11-01T00:00:00Z"):
        parse_time("yesterday")


def test_iso_time_and_floor() -> None:
    """Times print in UTC with milliseconds and a Z; floor_to finds the start of a period."""
    assert iso_time(1_793_491_200.25) == "2026-11-01T00:00:00.250Z"
    assert parse_time(iso_time(1_793_491_200)) == 1_793_491_200
    assert floor_to(1_793_491_259.9, 60) == 1_793_491_200


def test_urls_are_checked_once_and_shown_without_credentials() -> None:
    """http_url accepts absolute http(s) URLs only; messages and redacted URLs never show a password."""
    assert (
        str(http_url("https://hooks.internal:5001/hook", "--alert-webhook", "x")) == "https://hooks.internal:5001/hook"
    )
    for bad in ("ftp://host/x", "not a url", "http://", "/relative/path"):
        with pytest.raises(ValueError, match="--upstream must be an http"):
            http_url(bad, "--upstream", "http://127.0.0.1:9000")
    with pytest.raises(ValueError) as refused:
        http_url("gopher://ops:s3cret@host/", "--alert-webhook", "http://receiver.internal:5001/hook")
    assert "s3cret" not in str(refused.value)
    assert redacted_url("http://ops:s3cret@hooks.internal:5001/hook/") == "http://hooks.internal:5001/hook"


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("postgresql://u:pw@h:5432/db?sslmode=require", "postgresql://u:***@h:5432/db?sslmode=require"),
        ("postgresql://u:p/ss@h/db", "postgresql://u:***@h/db"),  # an unencoded / would fool urlsplit
        ("postgresql://u:pa#ss?@h/db", "postgresql://u:***@h/db"),
        ("postgres://:pw@h/db", "postgres://:***@h/db"),
        (
            "postgresql://u@h/db?password=s3cret&application_name=x",
            "postgresql://u@h/db?password=***&application_name=x",
        ),
        ("postgresql://h/db", "postgresql://h/db"),
        ("/var/lib/yolowatch/y.db", "/var/lib/yolowatch/y.db"),
    ],
)
def test_a_database_url_never_shows_its_password(target: str, shown: str) -> None:
    assert shown_db(target) == shown
