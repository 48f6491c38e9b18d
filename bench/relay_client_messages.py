"""What real TURN clients send before they hold an allocation: the size of every request the relay
receives from Chromium (the browser driver of tests/relay/interop), coturn's turnutils_uclient and aioice,
per client and transport. It sizes the stream layer's pre-allocation frame limit (PREAUTH_MAX_FRAME)
and shows which first requests are larger than the relay's 401 (those cost no reflection budget).

    .venv/bin/python bench/relay_client_messages.py            # all clients (~1 min)

Firefox is not installed on this machine; its ICE agent (nICEr) sends the same minimal Allocate as
uclient (REQUESTED-TRANSPORT, optionally LIFETIME/FINGERPRINT) per its source, not measured here.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "relay")]

from relay_testkit import SECRET, RunningRelay, loopback_config, rest_credentials  # noqa: E402

from relay.stun import decode  # noqa: E402
from relay.stun.constants import Attr  # noqa: E402

DRIVER = ROOT / "tests" / "relay" / "interop" / "webrtc_relay_check.mjs"


class Recorder:
    """Wraps TurnCore.handle: every request's size, method and whether it carried MESSAGE-INTEGRITY."""

    def __init__(self, relay: RunningRelay) -> None:
        self.seen: list[tuple[str, int, bool, int]] = []  # (transport, method, signed, size)
        self.channels: dict[tuple[object, object], set[int]] = {}  # channel numbers bound per client
        core = relay.server.core
        original = core.handle

        def handle(data, origin, client, now, wall):  # type: ignore[no-untyped-def]
            try:
                message = decode(data)
                self.seen.append((origin.transport, message.method, message.get(Attr.USERNAME) is not None, len(data)))
                if message.method == 0x009 and message.get(Attr.CHANNEL_NUMBER) is not None:
                    self.channels.setdefault((origin.key, client), set()).add(message.get(Attr.CHANNEL_NUMBER))
            except Exception:
                pass
            return original(data, origin, client, now, wall)

        core.handle = handle  # type: ignore[method-assign]


def summary(name: str, seen: list[tuple[str, int, bool, int]], channels: dict | None = None) -> None:
    allocates = [s for s in seen if s[1] == 0x003]
    first = [size for _, _, signed, size in allocates if not signed]
    signed = [size for _, _, signed, size in allocates if signed]
    largest = max((size for *_, size in seen), default=0)
    print(
        f"{name:28s} first Allocate {min(first, default=0):4d}-{max(first, default=0):4d} B   "
        f"signed Allocate {min(signed, default=0):4d}-{max(signed, default=0):4d} B   largest request {largest:4d} B"
        f"   channels per allocation {max((len(c) for c in (channels or {}).values()), default=0)}"
    )


def chromium(transport: str) -> None:
    with RunningRelay(loopback_config()) as relay:
        recorder = Recorder(relay)
        username, password = rest_credentials("w_abcdefghijkl")
        port = relay.address(transport)[1]
        options = {
            "iceServers": [{"urls": f"turn:127.0.0.1:{port}?transport={transport}", "username": username,
                            "credential": password}],
            "timeoutMs": 20000, "messages": 5, "executablePath": "/usr/bin/chromium", "extraArgs": [],
        }  # fmt: skip
        subprocess.run(["node", str(DRIVER), json.dumps(options)], capture_output=True, timeout=90, cwd=ROOT)
        summary(f"chromium {transport}", recorder.seen, recorder.channels)


def uclient(transport: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        echo_port = s.getsockname()[1]
    peer = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(echo_port)], stdout=subprocess.DEVNULL)
    try:
        with RunningRelay(loopback_config(legacy_channel_numbers=True)) as relay:
            recorder = Recorder(relay)
            args = ["-t"] if transport == "tcp" else []
            subprocess.run(
                ["turnutils_uclient", "-W", SECRET, "-u", "uclient", "-e", "127.0.0.1", "-r", str(echo_port),
                 "-p", str(relay.address(transport)[1]), "-m", "2", "-n", "5", *args, "127.0.0.1"],
                capture_output=True, timeout=60,
            )  # fmt: skip
            summary(f"turnutils_uclient {transport}", recorder.seen, recorder.channels)
    finally:
        peer.terminate()
        peer.wait(5)


def aioice_client(transport: str) -> None:
    from aioice.turn import create_turn_endpoint

    with RunningRelay(loopback_config()) as relay:
        recorder = Recorder(relay)
        username, password = rest_credentials("aioice")

        async def run() -> None:
            turn, _ = await create_turn_endpoint(
                asyncio.DatagramProtocol, relay.address(transport), username, password, transport=transport
            )
            turn.close()

        asyncio.run(run())
        summary(f"aioice {transport}", recorder.seen, recorder.channels)


def main() -> None:
    for transport in ("udp", "tcp"):
        chromium(transport)
        uclient(transport)
        aioice_client(transport)


if __name__ == "__main__":
    main()
