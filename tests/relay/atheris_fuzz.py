"""Coverage-guided fuzzing of the relay with atheris (libFuzzer), bounded, reporting how many inputs ran.

    python tests/relay/atheris_fuzz.py                      # every target, 20000 runs each
    python tests/relay/atheris_fuzz.py --runs 200000        # longer
    python tests/relay/atheris_fuzz.py --target core_auth   # one target (what each subprocess runs)

Targets: `codec` (STUN decode + re-encode), `send_indication` (the packet path's Send parser),
`core_unauth` (TurnCore.handle with arbitrary bytes: must create no state and answer small),
`core_auth` (arbitrary attribute sections wrapped in valid credentials: every post-authentication path),
`stream` (arbitrary byte streams, arbitrarily chunked, into StreamConnection.on_bytes, with and without
a PROXY header expected).
A crash (uncaught exception, failed invariant) makes libFuzzer stop with the reproducer and a non-zero
exit; the summary prints inputs per target. pytest runs a short version (tests/relay/unit/test_fuzz_atheris.py).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TARGETS = ("codec", "send_indication", "core_unauth", "core_auth", "stream")


def _target(name: str):
    import atheris

    with atheris.instrument_imports():
        from relay.stun import Attr, Method, StunDecodeError, decode, encode
        from relay.stun.message import Message
        from relay.turn.wire import parse_send_indication
    sys.path.insert(0, str(HERE))
    from relay_testkit import CLIENT, WALL, CoreHarness, Session, rest_credentials, sign_raw

    if name == "codec":

        def one(data: bytes) -> None:
            try:
                message = decode(data)
            except StunDecodeError:
                return
            kept = [a for a in message.attributes if a[0] not in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)]
            again = decode(encode(Message(message.method, message.message_class, message.transaction_id, kept)))
            assert again.attributes == kept

        return one
    if name == "send_indication":

        def one(data: bytes) -> None:
            parsed = parse_send_indication(b"\x00\x16" + data[2:] if len(data) > 2 else data)
            if parsed is not None:
                assert 0 <= parsed[1] <= 65535 and len(parsed[2]) <= len(data)

        return one
    if name == "core_unauth":
        harness = CoreHarness()

        def one(data: bytes) -> None:
            response = harness.core.handle(data, harness.origin, CLIENT, harness.now, harness.wall)
            if response is not None:
                assert len(response) <= 5 * len(data)
                assert decode(response).get(Attr.ERROR_CODE, (0,))[0] != 500
            assert len(harness.core.table) == 0 and not harness.binder.endpoints

        return one
    if name == "core_auth":
        harness = CoreHarness()
        harness.session = Session(*rest_credentials(expiry=int(WALL) + 10**8))
        methods = (Method.ALLOCATE, Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND)

        def one(data: bytes) -> None:
            if len(data) < 2:
                return
            method = methods[data[0] % 4]
            client = (CLIENT[0], 40000 + data[1] % 2)
            harness.session.nonce = harness.core.nonces.issue(client, harness.wall)
            wire = sign_raw(method, data[2:], harness.session, os.urandom(12))
            response = harness.core.handle(wire, harness.origin, client, harness.now, harness.wall)
            if response is not None:
                assert decode(response).get(Attr.ERROR_CODE, (0,))[0] != 500
            harness.now += 7
            harness.wall += 7
            harness.core.tick(harness.now)
            assert harness.quota.total == len(harness.core.table) + len(harness.core.reservations)

        return one
    if name == "stream":
        import asyncio

        from relay.server.forwarding import Forwarder
        from relay.server.stream import StreamConnection

        harness = CoreHarness()

        class Transport(asyncio.Transport):
            """Just enough transport for StreamConnection: counts what the relay writes back."""

            def __init__(self) -> None:
                super().__init__()
                self.written = 0
                self.protocol: StreamConnection | None = None

            def write(self, data: bytes) -> None:
                self.written += len(data)

            def abort(self) -> None:
                if self.protocol is not None:
                    protocol, self.protocol = self.protocol, None
                    protocol.connection_lost(None)

            close = abort

            def get_write_buffer_size(self) -> int:
                return 0

            def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
                pass

            def pause_reading(self) -> None:
                pass

            def resume_reading(self) -> None:
                pass

            def get_extra_info(self, name: str, default: object = None) -> object:
                return {"peername": ("198.51.100.9", 5000), "sockname": ("10.0.0.5", 3478)}.get(name, default)

        def one(data: bytes) -> None:
            if not data:
                return
            connection = StreamConnection(
                harness.core, Forwarder(harness.stats), "tcp", proxy_protocol=bool(data[0] & 1), on_close=lambda c: None
            )
            transport = Transport()
            transport.protocol = connection
            connection.connection_made(transport)
            step = 1 + data[0] % 64  # arbitrary chunking: frames split across reads
            for start in range(1, len(data), step):
                connection.on_bytes(data[start : start + step])
            assert transport.written <= 5 * len(data)
            assert len(harness.core.table) == 0 and not harness.binder.endpoints
            transport.abort()

        return one
    raise SystemExit(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")


def run_one(name: str, runs: int) -> None:
    import atheris

    sys.path.insert(0, str(ROOT))
    callback = _target(name)
    artifacts = tempfile.mkdtemp(prefix=f"relay-atheris-{name}-")  # crash reproducers land here, not in the repo
    atheris.Setup(
        [sys.argv[0], f"-runs={runs}", "-max_len=2048", "-print_final_stats=1", f"-artifact_prefix={artifacts}/"],
        callback,
    )
    atheris.Fuzz()


def run_all(runs: int, targets: tuple[str, ...] = TARGETS) -> dict[str, int]:
    """Run each target in its own process (libFuzzer owns the process); return inputs run per target."""
    counts: dict[str, int] = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in targets:
        result = subprocess.run(
            [sys.executable, __file__, "--target", name, "--runs", str(runs)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        done = re.findall(r"Done (\d+) runs", result.stderr)
        if result.returncode != 0 or not done:
            raise SystemExit(f"atheris target {name} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
        counts[name] = int(done[-1])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20000, help="inputs per target (default 20000)")
    parser.add_argument("--target", choices=TARGETS, help="run one target in this process")
    args = parser.parse_args()
    if args.target:
        run_one(args.target, args.runs)
        return
    counts = run_all(args.runs)
    for name, count in counts.items():
        print(f"{name:16s} {count:>10d} inputs")
    print(f"{'total':16s} {sum(counts.values()):>10d} inputs")


if __name__ == "__main__":
    main()
