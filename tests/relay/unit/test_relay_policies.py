"""Pure policies: REST/static authentication, stateless nonces, the peer filter and quotas."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re

import pytest

from relay.policy.auth import Authenticator, AuthFailure, parse_rest_username, rest_password
from relay.policy.nonce import NONCE_LENGTH, Nonces, NonceStatus
from relay.policy.peers import PeerPolicy, normalise, normalise_text, parse_peer_list
from relay.policy.quotas import AllocationQuota, SourceLimiter, TokenBucket

NOW = 1_800_000_000.0
REALM = "turn.example.org"


def md5_key(username: str, password: str) -> bytes:
    return hashlib.md5(f"{username}:{REALM}:{password}".encode()).digest()


# --- authentication ----------------------------------------------------------------------------


def test_rest_password_is_base64_hmac_sha1() -> None:
    expected = base64.b64encode(hmac.new(b"s3cret", b"1800000600:alice", hashlib.sha1).digest()).decode()
    assert rest_password("s3cret", "1800000600:alice") == expected


@pytest.mark.parametrize(
    ("username", "expiry", "user"),
    [
        ("1800000600:alice", 1800000600.0, "alice"),
        ("alice:1800000600", 1800000600.0, "alice"),
        ("1800000600", 1800000600.0, ""),
        ("1800000600:w_ab:cd", 1800000600.0, "w_ab:cd"),
        # BBB's legacy millisecond creation time: valid for the TTL after creation.
        ("1799999000000:bob", 1799999000.0 + 86400, "bob"),
    ],
)
def test_parse_rest_username(username: str, expiry: float, user: str) -> None:
    parsed = parse_rest_username(username, ms_timestamp_ttl=86400)
    assert parsed is not None and (parsed.expiry, parsed.user) == (expiry, user)


@pytest.mark.parametrize(
    ("stamp", "expiry"),
    [
        (10**11 - 1, float(10**11 - 1)),  # the largest stamp read as seconds (year 5138)
        (10**11, 10**11 / 1000 + 86400),  # the smallest read as BBB's milliseconds
        (10**15 - 1, (10**15 - 1) / 1000 + 86400),  # the longest accepted (15 digits), to the millisecond
    ],
)
def test_seconds_and_milliseconds_stamps_part_at_10_to_the_11(stamp: int, expiry: float) -> None:
    parsed = parse_rest_username(f"{stamp}:carol", ms_timestamp_ttl=86400)
    assert parsed is not None and (parsed.expiry, parsed.user) == (expiry, "carol")


@pytest.mark.parametrize(
    "username", ["alice", "", "alice:bob", "1e9:x", f"{10**15}:x", "12345678901234567890:x", "١٢٣:x"]
)
def test_usernames_without_a_timestamp_are_not_rest(username: str) -> None:
    assert parse_rest_username(username, 86400) is None


def _auth(**kwargs) -> Authenticator:
    return Authenticator(REALM, kwargs.pop("secrets", ("old-secret", "new-secret")), **kwargs)


def test_every_configured_secret_is_accepted_for_rotation() -> None:
    auth = _auth()
    for secret in ("old-secret", "new-secret"):
        username = "1800000600:alice"
        key = md5_key(username, rest_password(secret, username))
        credential = auth.authenticate(username, lambda k, key=key: k == key, NOW)
        assert not isinstance(credential, AuthFailure)
        assert credential.key == key and credential.quota_user == "alice"
        auth.update(("old-secret", "new-secret"), ())  # clears the cache between secrets


def test_wrong_secret_expired_and_unknown_are_refused_with_reasons() -> None:
    auth = _auth()
    username = "1800000600:alice"
    wrong = md5_key(username, rest_password("other", username))
    assert auth.authenticate(username, lambda k: k == wrong, NOW) is AuthFailure.BAD_INTEGRITY
    expired = "1799999999:alice"
    key = md5_key(expired, rest_password("new-secret", expired))
    assert auth.authenticate(expired, lambda k: k == key, NOW) is AuthFailure.EXPIRED
    # Expiry is only checked where asked (Allocate); requests on an allocation use its stored key.
    assert not isinstance(auth.authenticate(expired, lambda k: k == key, NOW, check_expiry=False), AuthFailure)
    assert auth.authenticate("plainname", lambda k: True, NOW) is AuthFailure.UNKNOWN_USER


def test_a_credential_is_valid_through_its_expiry_second() -> None:
    """coturn's rule (refused only once the expiry is in the past): a client that asks at the expiry second
    is served by both."""
    auth = _auth()
    username = f"{int(NOW)}:alice"
    key = md5_key(username, rest_password("new-secret", username))
    assert not isinstance(auth.authenticate(username, lambda k: k == key, NOW), AuthFailure)
    assert auth.authenticate(username, lambda k: k == key, NOW + 0.001) is AuthFailure.EXPIRED


def test_rotated_out_secret_stops_working_even_when_cached() -> None:
    auth = _auth()
    username = "1800000600:alice"
    key = md5_key(username, rest_password("old-secret", username))
    assert not isinstance(auth.authenticate(username, lambda k: k == key, NOW), AuthFailure)
    auth.update(("new-secret",), ())
    assert auth.authenticate(username, lambda k: k == key, NOW) is AuthFailure.BAD_INTEGRITY


def test_static_users_and_cache_bound() -> None:
    auth = Authenticator(REALM, ("s",), (("tester", "pa55"),), cache_size=2)
    key = md5_key("tester", "pa55")
    credential = auth.authenticate("tester", lambda k: k == key, NOW)
    assert not isinstance(credential, AuthFailure) and credential.quota_user == "tester"
    for i in range(5):
        name = f"1800000600:user{i}"
        k = md5_key(name, rest_password("s", name))
        assert not isinstance(auth.authenticate(name, lambda c, k=k: c == k, NOW), AuthFailure)
    assert len(auth._cache) == 2


def test_the_key_cache_forgets_the_least_recently_used_user() -> None:
    """A cached user costs one key derivation, a forgotten one one per secret: the cache must keep the users who
    keep sending (a full cache that forgot its newest entry would derive every key of every new user forever)."""
    auth = Authenticator(REALM, ("s1", "s2"), cache_size=2)
    names = [f"1800000600:user{i}" for i in range(3)]
    for name in (names[0], names[1], names[0], names[2]):  # user1 is the least recently used when user2 comes
        key = md5_key(name, rest_password("s2", name))
        assert not isinstance(auth.authenticate(name, lambda k, key=key: k == key, NOW), AuthFailure)
    derived = [auth.candidate_keys(name, NOW, check_expiry=True) for name in names]
    assert [len(keys) for keys in derived if not isinstance(keys, AuthFailure)] == [1, 2, 1]


# --- nonces ------------------------------------------------------------------------------------


def test_nonce_round_trip_and_binding() -> None:
    nonces = Nonces(b"fleet secret", lifetime=600)
    client = ("198.51.100.7", 40000)
    nonce = nonces.issue(client, NOW)
    assert len(nonce) == NONCE_LENGTH and nonce.isascii()
    # 8 hex digits of the issue time, then 12 MAC bytes as 16 base64url characters (no padding to quote).
    assert re.fullmatch(r"[0-9a-f]{8}[A-Za-z0-9_-]{16}", nonce) and nonce[:8] == f"{int(NOW):08x}"
    assert nonces.check(nonce, client, NOW + 599) is NonceStatus.VALID
    assert nonces.check(nonce, client, NOW + 601) is NonceStatus.STALE
    assert nonces.check(nonce, ("198.51.100.7", 40001), NOW) is NonceStatus.INVALID
    assert nonces.check(nonce, ("198.51.100.8", 40000), NOW) is NonceStatus.INVALID
    # Another instance with the same secret accepts it; one with a different secret does not.
    assert Nonces(b"fleet secret", 600).check(nonce, client, NOW) is NonceStatus.VALID
    assert Nonces(b"other", 600).check(nonce, client, NOW) is NonceStatus.INVALID


@pytest.mark.parametrize("bad", ["", "x" * 24, "zzzzzzzz" + "A" * 16, "0" * 200])
def test_malformed_nonces_are_invalid(bad: str) -> None:
    assert Nonces(b"k", 600).check(bad, ("192.0.2.1", 1), NOW) is NonceStatus.INVALID


def test_nonce_age_limits_are_inclusive_both_ways() -> None:
    """Valid up to exactly its lifetime, and up to exactly the 60 s another instance's clock may be ahead (issued
    at an odd second: the stamp keeps every bit of it)."""
    nonces = Nonces(b"k", 600)
    client = ("192.0.2.1", 1)
    issued = NOW + 1
    nonce = nonces.issue(client, issued)
    assert nonces.check(nonce, client, issued + 600) is NonceStatus.VALID
    assert nonces.check(nonce, client, issued + 600.5) is NonceStatus.STALE
    assert nonces.check(nonce, client, issued - 60) is NonceStatus.VALID
    assert nonces.check(nonce, client, issued - 60.5) is NonceStatus.STALE


@pytest.mark.parametrize("lifetime", [0, -1, -0.5])
def test_a_nonce_lifetime_that_is_not_positive_is_refused(lifetime: float) -> None:
    with pytest.raises(ValueError, match="nonce lifetime must be positive"):
        Nonces(b"k", lifetime)
    assert Nonces(b"k", 0.5).lifetime == 0.5  # any positive lifetime is one


def test_tampered_timestamp_is_invalid_and_future_nonce_is_stale() -> None:
    nonces = Nonces(b"k", 600)
    client = ("192.0.2.1", 1)
    nonce = nonces.issue(client, NOW)
    forged = f"{int(NOW) + 500:08x}" + nonce[8:]
    assert nonces.check(forged, client, NOW + 700) is NonceStatus.INVALID
    assert nonces.check(nonces.issue(client, NOW + 3600), client, NOW) is NonceStatus.STALE
    with pytest.raises(ValueError, match="empty"):
        Nonces(b"", 600)


# --- peers -------------------------------------------------------------------------------------

# firefart/stunner range-scan targets.
STUNNER_RANGE_SCAN = [
    "0.0.0.0", "::", "127.0.0.1", "127.0.0.8", "127.255.255.254", "::1", "10.0.0.1", "10.255.255.254",
    "172.16.0.1", "172.31.255.254", "192.168.0.1", "192.168.255.254", "169.254.0.1", "169.254.254.255",
    "224.0.0.1", "239.255.255.254", "100.64.0.0", "100.127.255.254", "192.0.0.1", "192.0.0.254",
    "192.0.2.1", "192.0.2.254", "198.18.0.1", "198.19.255.254", "198.51.100.1", "198.51.100.254",
    "203.0.113.1", "203.0.113.254", "240.0.0.1", "255.255.255.255", "169.254.169.254",
]  # fmt: skip
BYPASSES = [
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::7f00:1",
    "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe", "fe80::1", "fd00::1", "ff02::1", "::ffff:0.0.0.0",
]  # fmt: skip


@pytest.mark.parametrize("address", STUNNER_RANGE_SCAN + BYPASSES)
def test_special_purpose_addresses_are_denied_by_default(address: str) -> None:
    decision = PeerPolicy().check(address)
    assert not decision.allowed, decision


def test_every_enablesecurity_recommended_range_is_denied_at_both_ends() -> None:
    ranges = [
        "0.0.0.0-0.255.255.255",
        "10.0.0.0-10.255.255.255",
        "100.64.0.0-100.127.255.255",
        "127.0.0.0-127.255.255.255",
        "169.254.0.0-169.254.255.255",
        "172.16.0.0-172.31.255.255",
        "192.0.0.0-192.0.0.255",
        "192.0.2.0-192.0.2.255",
        "192.31.196.0-192.31.196.255",
        "192.52.193.0-192.52.193.255",
        "192.88.99.0-192.88.99.255",
        "192.168.0.0-192.168.255.255",
        "192.175.48.0-192.175.48.255",
        "198.18.0.0-198.19.255.255",
        "198.51.100.0-198.51.100.255",
        "203.0.113.0-203.0.113.255",
        "224.0.0.0-239.255.255.255",
        "240.0.0.0-255.255.255.255",
        "::1-::1",
        "64:ff9b::-64:ff9b::ffff:ffff",
        "64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        "100::-100::ffff:ffff:ffff:ffff",
        "100::1:0:0:0:0-100::1:ffff:ffff:ffff:ffff",
        "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2620:4f:8000::-2620:4f:8000:ffff:ffff:ffff:ffff:ffff",
        "3fff::-3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
        "5f00::-5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ]
    policy = PeerPolicy()
    for entry in ranges:
        first, last = entry.split("-")
        assert not policy.allows(first), first
        assert not policy.allows(last), last


@pytest.mark.parametrize("address", ["8.8.8.8", "52.1.2.3", "2600:1f18::1", "2a00:1450::200e", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert PeerPolicy().allows(address)


def test_allow_list_wins_but_only_for_the_normalised_address() -> None:
    policy = PeerPolicy(allowed=[ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16")])
    assert policy.allows("127.0.0.1") and policy.allows("::ffff:127.0.0.1")  # same destination
    assert policy.allows("10.1.2.3")
    assert not policy.allows("127.0.0.2")
    assert not policy.allows("::127.0.0.1") and not policy.allows("64:ff9b::7f00:1")
    assert not policy.allows("2002:7f00:1::") and not policy.allows("0.0.0.0") and not policy.allows("::")


def test_operator_deny_list_and_deny_everything_mode() -> None:
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    policy = PeerPolicy(allowed=[ipaddress.ip_network("52.1.2.3/32")], denied=everything)
    assert policy.allows("52.1.2.3") and not policy.allows("52.1.2.4") and not policy.allows("2600::1")
    assert policy.check("52.1.2.4").reason == "operator deny list"
    policy.update((), (), allow_loopback=True)
    assert policy.allows("127.0.0.1") and policy.allows("::1") and not policy.allows("0.0.0.0")
    assert policy.check("not-an-ip").allowed is False
    policy.update((), ())  # a reload that does not say: loopback is denied again
    assert not policy.allows("127.0.0.1") and not policy.allows("::1")


def test_normalisation() -> None:
    assert str(normalise("::ffff:127.0.0.1")) == "127.0.0.1"
    assert normalise_text("2001:DB8::0:1") == "2001:db8::1"
    assert normalise_text("fe80::1%eth0") == "fe80::1"


def test_parse_peer_list() -> None:
    text = "# BBB servers\n52.1.2.3\n10.0.0.0/24  # inside\n\n198.51.100.1-198.51.100.4\n2600:1f18::/64\n"
    text += "203.0.113.7/24  # an address with its prefix length: the network it is in\n"
    networks = parse_peer_list(text)
    assert [str(n) for n in networks] == [
        "52.1.2.3/32", "10.0.0.0/24", "198.51.100.1/32", "198.51.100.2/31", "198.51.100.4/32", "2600:1f18::/64",
        "203.0.113.0/24",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"allowed-peers line 2: 'nonsense' is not an IP address"):
        parse_peer_list("1.2.3.4\nnonsense\n", source="allowed-peers")


# --- quotas ------------------------------------------------------------------------------------


def test_allocation_quota_per_user_and_total() -> None:
    quota = AllocationQuota(total=3, per_user=2)
    assert quota.try_acquire("a") is None and quota.try_acquire("a") is None
    assert quota.try_acquire("a") == 486
    assert quota.try_acquire("b") is None
    assert quota.try_acquire("c") == 508
    quota.release("a")
    assert quota.try_acquire("c") is None
    assert (quota.total, quota.user_count("a"), quota.users) == (3, 1, 3)
    with pytest.raises(ValueError, match="more often"):
        quota.release("nobody")
    unlimited = AllocationQuota()
    assert all(unlimited.try_acquire("x") is None for _ in range(1000))
    unlimited.release("x")  # one of many: exactly one fewer
    assert (unlimited.user_count("x"), unlimited.total) == (999, 999)
    assert quota.user_count("never-seen") == 0 and quota.users == 3
    for _ in range(3):  # each of a, b and c gives back its last allocation and is forgotten
        quota.release("a" if quota.user_count("a") else "c" if quota.user_count("c") else "b")
    assert (quota.total, quota.users, quota.user_count("b")) == (0, 0, 0)


def test_lowered_quotas_refuse_new_allocations_above_the_new_limit() -> None:
    """A reload may lower the limits below what is in use: existing allocations stay, new ones are refused
    (a count already above the limit, not only equal to it)."""
    quota = AllocationQuota(total=10, per_user=5)
    for _ in range(3):
        assert quota.try_acquire("a") is None
    quota.update(total=10, per_user=2)
    assert quota.try_acquire("a") == 486 and quota.user_count("a") == 3
    quota.update(total=2, per_user=0)
    assert quota.try_acquire("b") == 508 and quota.total == 3


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 1), (1, -1)])
def test_rate_limits_refuse_a_rate_or_burst_that_is_not_positive(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket(rate=rate, burst=burst, now=0.0)
    with pytest.raises(ValueError, match="must be positive"):
        SourceLimiter(rate=rate, burst=burst)
    for slots in (0, -1):
        with pytest.raises(ValueError, match="must be positive"):
            SourceLimiter(rate=1, burst=1, slots=slots)
    smallest = SourceLimiter(rate=1, burst=1, slots=1)  # the relay's own floor: a burst of 1 (app.py)
    assert smallest.allow("192.0.2.1", NOW) and not smallest.allow("192.0.2.2", NOW)  # one slot: shared


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1000, burst=1500, now=0.0)
    assert bucket.consume(1500, 0.0)
    assert not bucket.consume(1, 0.0)
    assert bucket.consume(500, 0.5)
    assert not bucket.consume(600, 0.5)
    assert bucket.consume(1500, 100.0) and not bucket.consume(1, 100.0)  # burst caps idle accrual
    partial = TokenBucket(rate=1000, burst=1500, now=0.0)  # a packet smaller than the tokens keeps the rest
    assert partial.consume(100, 0.0) and partial.consume(1400, 0.0) and not partial.consume(1, 0.0)
    slow = TokenBucket(rate=0.5, burst=1, now=0.0)  # any positive rate and burst, below one too
    assert slow.consume(1, 0.0) and not slow.consume(1, 1.0) and slow.consume(1, 2.0)


def test_a_refund_gives_back_one_answer_up_to_the_burst() -> None:
    """A source that proves with a nonce that it receives our answers gets one back per proof (a crowd behind one
    NAT address keeps its budget), never more than the burst."""
    limiter = SourceLimiter(rate=1, burst=2, slots=64, salt=b"fixed")
    source = "198.51.100.1"
    assert [limiter.allow(source, NOW) for _ in range(3)] == [True, True, False]
    limiter.refund(source)
    assert [limiter.allow(source, NOW) for _ in range(2)] == [True, False]
    for _ in range(5):
        limiter.refund(source)
    assert [limiter.allow(source, NOW) for _ in range(3)] == [True, True, False]


def test_source_limiter_is_per_source_and_constant_memory() -> None:
    limiter = SourceLimiter(rate=10, burst=5, slots=64, salt=b"fixed")
    allowed = sum(limiter.allow("198.51.100.1", NOW) for _ in range(20))
    assert allowed == 5
    assert limiter.allow("198.51.100.1", NOW + 0.2)  # tokens come back at 10 per second
    # A source in another slot is unaffected.
    busy = limiter._slot("198.51.100.1")
    other = next(f"203.0.113.{i}" for i in range(256) if limiter._slot(f"203.0.113.{i}") != busy)
    assert limiter.allow(other, NOW)
    slots = {limiter._slot(f"203.0.113.{i}") for i in range(256)}
    assert slots <= set(range(64)) and len(slots) > 48  # 256 sources spread over the whole table
    for i in range(10_000):
        limiter.allow(f"10.{i // 256}.{i % 256}.1", NOW)
    assert len(limiter._tokens) == 64
