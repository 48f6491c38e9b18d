"""One worker process of the multi-worker relay (started by relay.process.workers.Supervisor, never by hand):

    python -m relay.process.worker --control-fd N

The supervisor passes, on the control socket N (relay.process.ipc), a `start` message: the configuration
(with the nonce secret every worker shares), this worker's index, the listening sockets it bound with
SO_REUSEPORT (inherited descriptors), the shared quota table, this worker's share of the relay
port range and, with kernel-offload, the program's map descriptors (its allocations' entries go there).
The worker then runs one `RelayServer` on its own event loop and:

  * answers `ready` once every listener serves (or `failed` with the reason, and exits 1);
  * pushes its `RelayStats` snapshot every STATS_INTERVAL seconds, and at once on `snapshot`;
  * applies `drain` (new Allocates get 403), `reload` (a new configuration) and `stop`;
  * stops when the supervisor goes away (end of file on the control socket).

Signals: SIGTERM stops the worker, SIGUSR1 drains it (as a `systemctl kill` to the whole unit does);
SIGINT and SIGHUP are ignored here because the supervisor receives them too and forwards what they
mean. Exit codes: 0 after a stop, 1 when it could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from relay.config import RelayConfig
from relay.ops.logs import configure_logging, get_logger, register_secret
from relay.ops.metrics import RelayStats
from relay.policy.shared_quotas import SharedQuota
from relay.policy.tls import ServerTls
from relay.process import ipc
from relay.process.cli import run_event_loop
from relay.server.app import RelayServer
from relay.server.kernel.loader import drop_capabilities
from relay.server.kernel.mapset import MapSet
from relay.server.kernel.mirror import KernelMirror

STATS_INTERVAL = 0.5  # seconds between snapshots pushed to the supervisor
START_TIMEOUT = 30.0
_log = get_logger("relay.worker")


class _WorkerTag(logging.Filter):
    """Adds `worker=N` to every log line of this process."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.fields = {**(getattr(record, "fields", None) or {}), "worker": self.index}
        return True


def _configure_logging(config: RelayConfig, index: int) -> None:
    configure_logging(config.log_level, config.log_format).addFilter(_WorkerTag(index))


def _register_secrets(config: RelayConfig) -> None:
    for secret in config.auth_secrets:
        register_secret(secret)
    for _, password in config.static_users:
        register_secret(password)
    register_secret(config.nonce_secret)


class Worker:
    def __init__(self, control: socket.socket, start: dict[str, Any]) -> None:
        self.control = control
        self.index = int(start["worker"])
        self.config = ipc.config_from_wire(start["config"])
        self.stats = RelayStats()
        self.draining = bool(start.get("draining", False))
        self.quota = SharedQuota(int(start["quota_fd"]), self.index, self.config.total_quota, self.config.user_quota)
        self.sockets = {int(index): socket.socket(fileno=int(fd)) for index, fd in start["listeners"]}
        low, high = start["port_range"]
        self.port_range = (int(low), int(high))
        # The in-kernel path's maps, loaded by the supervisor: this worker only installs and removes the
        # entries of its own allocations (and never needs a capability for it).
        maps = {str(name): int(fd) for name, fd in start.get("kernel_maps", {}).items()}
        self.mirror = KernelMirror(MapSet.from_fds(maps)) if maps else None
        drop_capabilities()  # the unit grants them for the supervisor's loader, never for packet parsing
        self.server: RelayServer | None = None
        self._stop: asyncio.Event | None = None

    def _tls(self) -> ServerTls | None:
        config = self.config
        if config.cert_file and config.key_file and any(x.transport == "tls" for x in config.listeners):
            return ServerTls(config.cert_file, config.key_file, config.tls_min_version, config.tls_ciphers)
        return None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.server = RelayServer(
                self.config,
                stats=self.stats,
                draining=lambda: self.draining,
                quota=self.quota,
                tls=self._tls(),
                sockets=self.sockets,
                port_range=self.port_range,
                mirror=self.mirror,
            )
            await self.server.start()
        except (OSError, ValueError) as error:
            _log.error("start_failed", detail=str(error))
            ipc.send(self.control, {"type": "failed", "error": str(error)})
            return 1
        server = self.server
        addresses = [[kind, list(address)] for kind, address in server.addresses]
        ipc.send(self.control, {"type": "ready", "addresses": addresses})
        loop.add_reader(self.control.fileno(), self._on_control)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self._drain)
        pusher = loop.create_task(self._push_stats())
        try:
            await self._stop.wait()
        finally:
            pusher.cancel()
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(self.control.fileno())
            await server.close()
            self._send_stats()  # the last counts (allocations now 0) before exiting
        return 0

    def _drain(self) -> None:
        if not self.draining:
            self.draining = True
            _log.info("draining")

    def _send_stats(self, request_id: int | None = None) -> None:
        message: dict[str, Any] = {"type": "stats", "snapshot": self.stats.snapshot()}
        if request_id is not None:
            message["id"] = request_id
        ipc.send(self.control, message)

    async def _push_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            self._send_stats()

    def _on_control(self) -> None:
        assert self._stop is not None
        try:
            messages = ipc.receive(self.control)
        except (EOFError, ValueError) as error:
            _log.warning("supervisor_gone", detail=str(error))
            self._stop.set()
            return
        for message in messages:
            kind = message["type"]
            if kind == "snapshot":
                self._send_stats(int(message.get("id", 0)))
            elif kind == "drain":
                self._drain()
            elif kind == "stop":
                self._stop.set()
            elif kind == "reload":
                self._reload(message)
            else:
                _log.warning("unknown_control_message", kind=kind)

    def _reload(self, message: dict[str, Any]) -> None:
        try:
            config = ipc.config_from_wire(message["config"])
            _register_secrets(config)
            assert self.server is not None
            self.server.reload(config)
            _configure_logging(config, self.index)
            self.config = config
        except Exception as error:  # the previous configuration stays in force
            _log.error("reload_failed", detail=str(error))
            ipc.send(self.control, {"type": "reloaded", "ok": False, "error": str(error)})
            return
        ipc.send(self.control, {"type": "reloaded", "ok": True, "error": ""})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relay.process.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    control = socket.socket(fileno=args.control_fd)
    try:
        start = ipc.receive_blocking(control, START_TIMEOUT)
        if start["type"] != "start":
            raise ValueError(f"expected a start message, got {start['type']!r}")
        worker = Worker(control, start)
    except (EOFError, OSError, ValueError, KeyError, TypeError) as error:
        print(f"bbb-turn-relay worker: cannot start: {error}", file=sys.stderr)
        return 1
    _register_secrets(worker.config)
    _configure_logging(worker.config, worker.index)
    return run_event_loop(worker.run())


if __name__ == "__main__":
    sys.exit(main())
