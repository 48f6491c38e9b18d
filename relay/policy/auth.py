"""Long-term credentials (RFC 8489 section 9.2): TURN REST API shared secrets and static users.

TURN REST API (draft-uberti-behave-turn-rest, what BigBlueButton and coturn use):
    username = "<expiry>:<user>"  (also accepted: "<user>:<expiry>" and a bare "<expiry>")
    password = base64(HMAC-SHA1(secret, username))
    key      = MD5(username ":" realm ":" password)
`<expiry>` is unix seconds. Some BBB versions put `System.currentTimeMillis()` there instead: a creation
time in milliseconds. coturn reads that as seconds in the far future (never expiring); we read it as
what it is and accept it for `ms_timestamp_ttl` seconds after creation (BBB's own TTL is 86400).

Several secrets are accepted at once, so a secret can be rotated without refusing anyone: issue with the
new one, keep the old one configured until the last credential made with it has expired.

Expiry is enforced when an allocation is created. Later requests on that allocation are checked against
the key stored with it (RFC 8656 requires the same credentials for the allocation's life), so a meeting
outliving its credential's TTL is not cut off.

Pure: time is passed in. Derived keys are cached (bounded) only after a successful check, so a flood of
made-up usernames cannot fill the cache.
"""

from __future__ import annotations

import base64
import enum
import hmac
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from relay.stun.integrity import long_term_key

Verifier = Callable[[bytes], bool]  # checks a request's MESSAGE-INTEGRITY with a candidate key

_MAX_TIMESTAMP_DIGITS = 15
_MILLISECONDS_THRESHOLD = 10**11  # ~ year 5138 in seconds; anything larger is a millisecond timestamp


class AuthFailure(enum.Enum):
    UNKNOWN_USER = "unknown_user"  # neither a static user nor a REST username
    EXPIRED = "expired"
    BAD_INTEGRITY = "bad_integrity"  # wrong password / secret


@dataclass(frozen=True)
class Credential:
    """What an allocation remembers about the user who created it."""

    username: str
    key: bytes
    quota_user: str  # identity for per-user quotas: the REST user part, or the static username


@dataclass(frozen=True)
class RestUsername:
    expiry: float
    user: str


def parse_rest_username(username: str, ms_timestamp_ttl: float) -> RestUsername | None:
    """Split a REST username into expiry and user part, or None if it carries no timestamp."""
    first, sep, rest = username.partition(":")
    if _is_timestamp(first):
        stamp, user = first, rest
    elif sep and _is_timestamp(username.rpartition(":")[2]):
        user, _, stamp = username.rpartition(":")
    else:
        return None
    value = int(stamp)
    expiry = value / 1000.0 + ms_timestamp_ttl if value >= _MILLISECONDS_THRESHOLD else float(value)
    return RestUsername(expiry, user)


def _is_timestamp(text: str) -> bool:
    return 0 < len(text) <= _MAX_TIMESTAMP_DIGITS and text.isascii() and text.isdigit()


def rest_password(secret: str, username: str) -> str:
    digest = hmac.digest(secret.encode("utf-8"), username.encode("utf-8"), "sha1")
    return base64.b64encode(digest).decode("ascii")


class Authenticator:
    """Finds the key that authenticates a request, trying every configured secret."""

    def __init__(
        self,
        realm: str,
        secrets: Iterable[str] = (),
        static_users: Iterable[tuple[str, str]] = (),
        *,
        ms_timestamp_ttl: float = 86400.0,
        cache_size: int = 8192,
    ) -> None:
        self.realm = realm
        self.ms_timestamp_ttl = ms_timestamp_ttl
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Credential] = OrderedDict()
        self._secrets: tuple[str, ...] = ()
        self._static: dict[str, bytes] = {}
        self.update(secrets, static_users)

    def update(self, secrets: Iterable[str], static_users: Iterable[tuple[str, str]]) -> None:
        """Replace secrets and static users (SIGHUP). Existing allocations keep their stored keys."""
        self._secrets = tuple(secrets)
        self._static = {name: long_term_key(name, self.realm, password) for name, password in static_users}
        self._cache.clear()

    def candidate_keys(self, username: str, now: float, *, check_expiry: bool) -> list[bytes] | AuthFailure:
        """Every key the username could be using, or why there is none."""
        static = self._static.get(username)
        if static is not None:
            return [static]
        if not self._secrets:
            return AuthFailure.UNKNOWN_USER
        parsed = parse_rest_username(username, self.ms_timestamp_ttl)
        if parsed is None:
            return AuthFailure.UNKNOWN_USER
        if check_expiry and parsed.expiry < now:
            return AuthFailure.EXPIRED
        cached = self._cache.get(username)
        if cached is not None:
            return [cached.key]
        return [long_term_key(username, self.realm, rest_password(secret, username)) for secret in self._secrets]

    def authenticate(
        self, username: str, verify: Verifier, now: float, *, check_expiry: bool = True
    ) -> Credential | AuthFailure:
        """Return the credential whose key makes `verify(key)` true, trying cached then all keys."""
        keys = self.candidate_keys(username, now, check_expiry=check_expiry)
        if isinstance(keys, AuthFailure):
            return keys
        for key in keys:
            if verify(key):
                return self._remember(username, key)
        if username in self._cache:  # a cached key failed: the secret may have been rotated out
            del self._cache[username]
            return self.authenticate(username, verify, now, check_expiry=check_expiry)
        return AuthFailure.BAD_INTEGRITY

    def _remember(self, username: str, key: bytes) -> Credential:
        if username in self._static:
            return Credential(username, key, username)
        cached = self._cache.get(username)
        if cached is not None and cached.key == key:  # the common case: a known user's next request
            self._cache.move_to_end(username)
            return cached
        parsed = parse_rest_username(username, self.ms_timestamp_ttl)
        credential = Credential(username, key, parsed.user if parsed else username)
        self._cache[username] = credential
        self._cache.move_to_end(username)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return credential
