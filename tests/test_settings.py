"""settings.number: the one reader of numeric environment variables."""

from __future__ import annotations

import pytest

from core import settings
from core.errors import FixativeError, InvalidArgument, InvalidModelFile

NAME = "FIXATIVE_TEST_NUMBER"


class Refused(FixativeError):
    pass


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_unset_or_blank_gives_the_default(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert settings.number(NAME, 7.5, minimum=1) == 7.5
    monkeypatch.delenv(NAME)
    assert settings.number(NAME, 3, integer=True, minimum=1) == 3


@pytest.mark.parametrize("value, expected", [
    ("5", 5.0), ("5 ", 5.0), (" 5", 5.0), ("+2.5", 2.5), ("1e-5", 1e-5), (".5", 0.5),
    ("5.", 5.0), ("1E3", 1000.0),
])
def test_plain_decimals_are_read(monkeypatch, value, expected):
    monkeypatch.setenv(NAME, value)
    assert settings.number(NAME, 1.0, minimum=0) == expected


@pytest.mark.parametrize("value", [
    "nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309", "0x10", "0b1", "1_000",
    "\u0661\u0662",  # Arabic-Indic digits: float() would read 12
    "\uff11\uff12",  # full-width digits
    "5 5", "5s", "30 seconds", "1,5", "--1", "e5", ".", "+", "'5'", "5\x7f",
    "9" * 65, "1" * 100_000, "x" * 100_000,
])
def test_hostile_text_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(InvalidArgument) as info:
        settings.number(NAME, 1.0, minimum=0, unit="seconds")
    message = info.value.message
    assert message.startswith(f"{NAME} must be a number of seconds of at least 0, got ")
    assert len(message) < 200  # a huge value is cut, not echoed whole


@pytest.mark.parametrize("value", ["1.5", "1e3", "nan", "inf", "0x10", "\u0661", "1_0"])
def test_a_whole_number_is_digits_only(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(InvalidArgument, match=f"{NAME} must be a whole number of bytes"):
        settings.number(NAME, 4, integer=True, minimum=1, unit="bytes")


def test_a_whole_number_stays_exact(monkeypatch):
    monkeypatch.setenv(NAME, str(2**63 + 1))
    value = settings.number(NAME, 4, integer=True, minimum=1)
    assert value == 2**63 + 1 and isinstance(value, int)


@pytest.mark.parametrize("value, bounds, wanted", [
    ("-1", {"minimum": 0}, "a number of at least 0"),
    ("0", {"above": 0}, "a number above 0"),
    ("-0", {"above": 0}, "a number above 0"),
    ("0.5", {"minimum": 1, "maximum": 10}, "a number from 1 to 10"),
    ("11", {"minimum": 1, "maximum": 10}, "a number from 1 to 10"),
    ("11", {"maximum": 10}, "a number of at most 10"),
])
def test_values_out_of_bounds_are_refused(monkeypatch, value, bounds, wanted):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(InvalidArgument, match=f"^{NAME} must be {wanted}, got '{value}'"):
        settings.number(NAME, 1.0, **bounds)


def test_the_bounds_themselves_are_allowed(monkeypatch):
    for value in ("1", "10"):
        monkeypatch.setenv(NAME, value)
        assert settings.number(NAME, 5.0, minimum=1, maximum=10) == float(value)


def test_off_is_taken_outside_the_bounds_and_said_in_the_message(monkeypatch):
    monkeypatch.setenv(NAME, "0")
    assert settings.number(NAME, 15.0, minimum=1, maximum=60, off=0) == 0
    monkeypatch.setenv(NAME, "0.5")
    with pytest.raises(InvalidArgument, match=rf"^{NAME} must be a number of seconds from 1 "
                                              r"to 60 or 0 to turn it off, got '0.5'\.$"):
        settings.number(NAME, 15.0, minimum=1, maximum=60, off=0, unit="seconds",
                        off_means="to turn it off")


def test_the_callers_error_class_and_hint_are_used(monkeypatch):
    monkeypatch.setenv(NAME, "lots")
    with pytest.raises(Refused, match=r"whole number of at least 1 \(or unset it\), got 'lots'"):
        settings.number(NAME, 2, integer=True, minimum=1, error=Refused, hint="or unset it")


def test_every_numeric_setting_refuses_nan_and_infinity(monkeypatch):
    from core.monitoring import limits
    from core.safety import scan
    from core.serving import heartbeat

    cases = [(settings.onnx_tolerance, settings.ONNX_TOLERANCE_ENV, InvalidArgument),
             (limits.query_seconds, settings.MONITOR_SECONDS_ENV, InvalidArgument),
             (heartbeat.interval, settings.HEARTBEAT_SECONDS_ENV, InvalidArgument),
             (heartbeat.stale_after, settings.HEARTBEAT_STALE_ENV, InvalidArgument),
             (lambda: scan.unpack_limit(10), settings.MAX_MODEL_BYTES_ENV, InvalidModelFile),
             (lambda: scan.unpack_limit(10), settings.MAX_UNPACK_RATIO_ENV, InvalidModelFile)]
    for read, name, error in cases:
        for value in ("nan", "inf", "1e309", "\u0661\u0662", "-1"):
            monkeypatch.setenv(name, value)
            with pytest.raises(error, match=f"^{name} must be"):
                read()
        monkeypatch.delenv(name)
        read()  # the default holds again


@pytest.mark.parametrize("text, expected", [
    ("12", 12.0), ("-0.5", -0.5), ("1e-5", 1e-5), ("nan", None), ("1e309", None),
    ("\u0661\u0662", None), ("1_0", None), (" 5", None), ("9" * 65, None), ("", None),
])
def test_decimal_reads_plain_ascii_numbers_only(text, expected):
    """What number() and the canary share read: the text as written, nothing stripped."""
    assert settings.decimal(text) == expected
