"""Structured logs: JSON/text shape, levels, escaping, and that secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging

import pytest

from relay.ops.logs import (
    REDACTED,
    RateLimitedLog,
    clear_registered_secrets,
    configure_logging,
    get_logger,
    register_secret,
)


@pytest.fixture
def capture():
    stream = io.StringIO()
    handler = None

    def setup(level="info", fmt="json"):
        nonlocal handler
        handler = configure_logging(level, fmt, stream)
        return stream

    yield setup
    if handler is not None:
        logging.getLogger().removeHandler(handler)
    clear_registered_secrets()


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_line_shape(capture):
    stream = capture()
    get_logger("relay.test").info("listening", transport="udp", port=3478, address=("0.0.0.0", 3478))
    (line,) = lines(stream)
    record = json.loads(line)
    assert record["level"] == "info"
    assert record["logger"] == "relay.test"
    assert record["event"] == "listening"
    assert record["transport"] == "udp" and record["port"] == 3478
    assert record["address"] == ["0.0.0.0", 3478]
    assert record["ts"].endswith("Z") and len(record["ts"]) == len("2026-11-21T13:25:33.123Z")


def test_level_filtering_and_reconfiguration_is_idempotent(capture):
    stream = capture(level="warning")
    log = get_logger("relay.test")
    log.info("hidden")
    log.warning("shown")
    assert [json.loads(line)["event"] for line in lines(stream)] == ["shown"]
    assert not log.is_enabled_for("info")
    stream = capture(level="debug")  # reconfigure: one handler only, so no duplicate lines
    log.debug("debugging")
    assert [json.loads(line)["event"] for line in lines(stream)] == ["shown", "debugging"]


def test_reserved_field_names_do_not_overwrite_the_envelope(capture):
    stream = capture()
    get_logger("relay.test").info("evt", level="forged", event="forged", ts=1)
    record = json.loads(lines(stream)[0])
    assert (record["level"], record["event"]) == ("info", "evt")
    assert (record["field_level"], record["field_event"], record["field_ts"]) == ("forged", "forged", 1)


def test_plain_logging_calls_use_the_same_format(capture):
    stream = capture()
    logging.getLogger("asyncio").warning("socket.send() raised %s", "EPIPE")
    record = json.loads(lines(stream)[0])
    assert record["event"] == "socket.send() raised EPIPE" and record["logger"] == "asyncio"


def test_exception_includes_traceback(capture):
    stream = capture()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("relay.test").exception("reload_failed", path="/etc/x")
    record = json.loads(lines(stream)[0])
    assert record["level"] == "error"
    assert "RuntimeError: boom" in record["exc"]


def test_text_format_escapes_client_controlled_values(capture):
    stream = capture(fmt="text")
    get_logger("relay.test").warning("auth_failed", username="evil\n2026-01-01 INFO forged", realm="r")
    (line,) = lines(stream)  # the newline did not create a second line
    assert " WARNING relay.test auth_failed " in line
    assert 'username="evil\\n2026-01-01 INFO forged"' in line
    assert line.endswith("realm=r")


def test_secret_named_fields_are_redacted(capture):
    stream = capture()
    get_logger("relay.test").info(
        "config", static_auth_secret="s3cr3t-value", cli_password="pw", nonce_secret=b"k", realm="bbb"
    )
    record = json.loads(lines(stream)[0])
    assert record["static_auth_secret"] == REDACTED
    assert record["cli_password"] == REDACTED
    assert record["nonce_secret"] == REDACTED
    assert record["realm"] == "bbb"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secrets_are_scrubbed_everywhere(capture, fmt):
    stream = capture(fmt=fmt)
    secret = "Zq8uXv2RkS0dWmA4yT7b"
    register_secret(secret)
    register_secret(b"\x01\x02\x03\x04\x05\x06\x07")
    log = get_logger("relay.test")
    log.info(f"loaded secret {secret}", detail=f"prefix-{secret}-suffix", raw=b"\x01\x02\x03\x04\x05\x06\x07".hex())
    try:
        raise ValueError(f"bad secret {secret}")
    except ValueError:
        log.exception("failure")
    output = stream.getvalue()
    assert secret not in output
    assert "01020304050607" not in output
    assert output.count(REDACTED) >= 4


def test_short_values_are_not_registered(capture):
    stream = capture()
    register_secret("ab")
    get_logger("relay.test").info("table tab")
    assert json.loads(lines(stream)[0])["event"] == "table tab"


def test_invalid_level_or_format_is_a_clear_error():
    with pytest.raises(ValueError, match="log level 'verbose'"):
        configure_logging("verbose")
    with pytest.raises(ValueError, match="log format 'xml'"):
        configure_logging("info", "xml")  # type: ignore[arg-type]


def test_rate_limited_log_writes_the_first_at_once_and_counts_the_rest_per_key() -> None:
    """One line per key and interval, whatever the rate; the count goes with the next line or a summary."""
    limit = RateLimitedLog(10.0)
    assert limit.admit("a", 100.0, "first") == 0  # at once
    assert [limit.admit("a", 100.0 + i / 100, i) for i in range(1000)] == [None] * 1000
    assert limit.admit("b", 100.5) == 0  # another key is not held back by a's flood
    assert limit.suppressed("a") == 1000
    assert limit.due(109.9) == []  # the interval is not over
    assert limit.due(110.0) == [("a", 1000, 999)]  # one summary with the count and the last sample
    assert limit.due(125.0) == []  # nothing left
    assert limit.admit("a", 125.0) == 0  # a new interval: written at once again
    assert limit.admit("a", 126.0) is None
    assert limit.admit("a", 135.0) == 1  # the next line after the interval carries the count


def test_every_refusal_cause_is_used_by_the_core_and_every_routine_one_exists() -> None:
    """The causes are a fixed set (the rate limiter's keys): each has a template the core uses."""
    from pathlib import Path

    from relay.policy.auth import AuthFailure
    from relay.turn import grants, handler
    from relay.turn.refusals import CAUSES, ROUTINE

    source = "".join(Path(module.__file__).read_text() for module in (handler, grants))
    from_auth = {failure.value for failure in AuthFailure}  # the core passes outcome.value
    unused = [cause for cause in CAUSES if f'"{cause}"' not in source and cause not in from_auth]
    unused = [cause for cause in unused if not (cause.endswith("_quota") and 'f"{kind}_quota"' in source)]
    assert unused == []
    assert from_auth <= set(CAUSES) and set(CAUSES) >= ROUTINE
