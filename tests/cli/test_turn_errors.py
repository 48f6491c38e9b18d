"""The meaning the probe gives to a relayed address (the real relays on loopback cannot show a public one)."""

from __future__ import annotations

from bbb_on_aws.turn_errors import private_relayed_address


def test_a_public_relay_must_relay_on_a_public_address():
    failure = private_relayed_address("52.1.2.3", "10.1.4.7")
    assert failure is not None and "10.1.4.7 is not public" in failure.detail
    assert "external-ip" in failure.cause
    assert private_relayed_address("52.1.2.3", "52.1.2.3") is None
    assert private_relayed_address("127.0.0.1", "127.0.0.1") is None  # a private relay (tests, a lab) is fine
