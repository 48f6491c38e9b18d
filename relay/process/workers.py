"""Multi-core relay: a supervisor process and one worker process per core (`workers`, 0 = one per CPU
this process may run on).

What the supervisor owns, and why:
  * the listening sockets: for every listener it binds one socket per worker with SO_REUSEPORT and
    hands worker i its own. The kernel hashes each client's 4-tuple to one socket of the group, so a
    client always reaches the same worker (which holds its allocation). The supervisor keeps its copy
    of every socket open: a crashed worker's socket stays in the group, so the hash of every *other*
    client is unchanged (removing a socket from a SO_REUSEPORT group reshuffles the mapping), and its
    replacement inherits the very same socket;
  * the shared secrets: the nonce key (generated here when the configuration has none) and the quota
    table (relay.policy.shared_quotas), so a retry that lands on another worker authenticates, and total and
    per-user quotas hold across workers;
  * the in-kernel path (kernel-offload, relay.server.kernel): the program is loaded and attached here
    once; each worker inherits the map descriptors and keeps its own allocations' entries in them; the
    entries of a worker that died are purged by its relay port slice before it is restarted;
  * the admin endpoint, signals and systemd: /metrics sums every worker's counters (fresh ones are
    asked for before each scrape, and workers push theirs every 0.5 s); SIGUSR1 or POST /drain drains
    every worker and the supervisor exits 0 once the sum of allocations reaches drain-min-allocations
    (or drain-timeout passes); SIGHUP or POST /reload re-reads the configuration here, validates it
    (and the certificate) and sends it to every worker; SIGTERM/SIGINT stop everything; READY=1 goes
    to systemd only when every worker serves.

Each worker owns the allocations created through it and the relay sockets it opened, from its own
slice of the relay port range (so workers never race for a port). A worker that dies is restarted
(0.5 s, then doubling up to 30 s while it keeps failing soon after start; after MAX_QUICK_FAILURES
in a row the supervisor gives up and exits 1 for systemd to restart the unit). Its allocations are
lost: their clients see their next Refresh or ChannelBind fail (437) and allocate again, as after a
relay restart; every other worker's clients notice nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.registry import Collector

import relay
from relay import __version__
from relay.config import Listener, RelayConfig, apply_reload, config_summary, load_config
from relay.ops.admin import AdminServer, start_admin
from relay.ops.control import RelayControl, install_signal_handlers
from relay.ops.logs import configure_logging, get_logger
from relay.ops.metrics import SnapshotAggregator
from relay.ops.systemd import SystemdNotifier
from relay.policy.shared_quotas import SharedQuota
from relay.policy.tls import ServerTls
from relay.process import ipc
from relay.server.app import STREAM_BACKLOG
from relay.server.kernel import offload
from relay.server.udp import bind_udp

_log = get_logger("relay.workers")
START_TIMEOUT = 30.0  # seconds for every worker to report ready
SCRAPE_WAIT = 0.5  # seconds a scrape waits for fresh worker counts (older pushed ones are used after)
STOP_GRACE = 10.0  # seconds workers get to close before they are killed
STABLE_AFTER = 10.0  # a worker that ran this long before dying is not "failing at start"
MAX_QUICK_FAILURES = 5
_CHILD_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def worker_count(config: RelayConfig) -> int:
    """`workers`, or one per CPU this process may use (taskset and cgroup cpusets respected)."""
    if config.workers > 0:
        return config.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def split_port_range(low: int, high: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous, disjoint shares of the relay range (contiguous keeps EVEN-PORT pairs together)."""
    size = (high - low + 1) // workers
    if size < 2:
        raise ValueError(
            f"the relay port range {low}-{high} is too small for {workers} workers (each needs at least 2 "
            f"ports); widen min-port/max-port or lower workers"
        )
    return [(low + i * size, high if i == workers - 1 else low + (i + 1) * size - 1) for i in range(workers)]


def bind_listeners(listeners: Sequence[Listener], workers: int) -> list[list[socket.socket]]:
    """For each listener, one SO_REUSEPORT socket per worker (port 0 binds once, then that port)."""
    bound: list[list[socket.socket]] = []
    try:
        for listener in listeners:
            group: list[socket.socket] = []
            bound.append(group)
            port = listener.port
            for _ in range(workers):
                sock = (
                    bind_udp(listener.host, port, reuse_port=True)
                    if listener.transport == "udp"
                    else _bind_stream(listener.host, port)
                )
                group.append(sock)
                port = sock.getsockname()[1]
    except OSError:
        for group in bound:
            for sock in group:
                sock.close()
        raise
    return bound


def _bind_stream(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio's create_server
        sock.bind((host, port))
        sock.listen(STREAM_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclasses.dataclass(eq=False)
class _Slot:
    """Worker i: its process and control socket while it runs, its restart history always."""

    index: int
    port_range: tuple[int, int]
    sockets: list[tuple[int, socket.socket]]  # (listener index, socket)
    process: subprocess.Popen[bytes] | None = None
    control: socket.socket | None = None
    ready: bool = False
    started_at: float = 0.0
    quick_failures: int = 0
    error: str = ""
    restart: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return str(self.index)


class WorkerCollector(Collector):
    """turn_workers (serving now) and turn_worker_restarts_total, next to the summed relay metrics."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def describe(self) -> Iterator[Any]:
        yield from self._families(False)

    def collect(self) -> Iterator[Any]:
        yield from self._families(True)

    def _families(self, with_samples: bool) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        serving = GaugeMetricFamily("turn_workers", "Worker processes serving now.")
        restarts = CounterMetricFamily("turn_worker_restarts", "Worker processes restarted after they died.")
        if with_samples:
            serving.add_metric([], sum(1 for slot in self._supervisor.slots if slot.ready))
            restarts.add_metric([], self._supervisor.restarts)
        yield serving
        yield restarts


class Supervisor:
    def __init__(
        self,
        config: RelayConfig,
        workers: int,
        *,
        argv: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.loaded = config  # as loaded: what reloads are compared with
        self.nonce_secret = config.nonce_secret or os.urandom(32)
        self.config = dataclasses.replace(config, nonce_secret=self.nonce_secret)
        self.workers = workers
        self.argv = list(argv)
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = notifier or SystemdNotifier(None)
        self.control = RelayControl(config.drain_timeout, config.drain_min_allocations)
        self.aggregator = SnapshotAggregator()
        self.slots: list[_Slot] = []
        self.restarts = 0
        self.quota: SharedQuota | None = None
        self.kernel: offload.Offload | None = None  # the in-kernel path, loaded here once for every worker
        self._listeners: list[list[socket.socket]] = []
        self._exit_code = 0
        self._stopping = False  # set once the workers are being stopped: no more restarts
        self._scrape_id = 0
        self._scrape_waiters: dict[int, tuple[set[int], asyncio.Future[None]]] = {}
        self._ready_waiter: asyncio.Future[None] | None = None
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until stopped or drained; the process exit code."""
        self._loop = asyncio.get_running_loop()
        config = self.config
        try:
            ranges = split_port_range(config.min_port, config.max_port, self.workers)
            self._listeners = bind_listeners(config.listeners, self.workers)
            if any(x.transport == "tls" for x in config.listeners) and config.cert_file and config.key_file:
                ServerTls(config.cert_file, config.key_file, config.tls_min_version, config.tls_ciphers)
            self.kernel = offload.start_for(config)
        except (OSError, ValueError, offload.KernelOffloadRequired) as error:
            self._close_listeners()
            return _cannot_start(error)
        self.quota = SharedQuota.create(self.workers, total=config.total_quota, per_user=config.user_quota)
        self.slots = [
            _Slot(i, ranges[i], [(n, group[i]) for n, group in enumerate(self._listeners)]) for i in range(self.workers)
        ]
        try:
            failure = await self._start_all()
            if failure:
                await self._stop_all()
                return _cannot_start(failure)
            admin = await start_admin(
                self.control,
                self._metrics_snapshot,
                config.admin_host,
                config.admin_port,
                collectors=(WorkerCollector(self),),
                before_metrics=self.refresh,
            )
            if admin is None:
                await self._stop_all()
                return 1
            return await self._serve(admin)
        finally:
            self._close_listeners()
            if self.kernel is not None:  # after every worker stopped: nothing in the maps is owned any more
                self.kernel.stop()
                self.kernel = None
            if self.quota is not None:
                self.quota.close()
                os.close(self.quota.fd)
                self.quota = None

    async def _serve(self, admin: AdminServer) -> int:
        assert self._loop is not None
        control = self.control
        control.on_reload(self._reload)
        control.on_drain(self._drain)
        control.on_drain(self._wakeup.set)
        control.on_stop(self._wakeup.set)
        remove_signals = install_signal_handlers(control, self._loop)
        watchdog = self.notifier.start_watchdog()
        control.mark_ready()
        self.notifier.ready(f"serving on {len(self.config.listeners)} listeners with {self.workers} workers")
        _log.info(
            "started",
            version=__version__,
            worker_processes=self.workers,
            **{k: str(v) for k, v in config_summary(self.loaded).items()},
        )
        try:
            reason = await self._wait_for_exit()
        finally:
            remove_signals()
            if watchdog is not None:
                watchdog.cancel()
        self.notifier.stopping(reason)
        _log.info("stopping", reason=reason, allocations=self.allocations())
        await admin.close()
        await self._stop_all()
        return self._exit_code

    def _metrics_snapshot(self) -> dict[str, int]:
        """Every worker's counters, plus what the kernel forwarded for all of them."""
        total = self.aggregator.total()
        return total if self.kernel is None else self.kernel.with_totals(total)

    def allocations(self) -> int:
        return self.aggregator.total()["allocations"]

    async def _wait_for_exit(self) -> str:
        """RelayControl's exit rule on the sum of every worker's allocations. While draining, the counts
        are asked for fresh before each check, and "drained" needs every worker's answer: a pushed count
        can be up to half a second old, and exiting on a stale zero would cut live allocations."""
        control = self.control
        while True:
            complete = await self.refresh() if control.draining else True
            reason = control.exit_reason(self.allocations(), control.clock())
            if reason is not None and (reason != "drained" or complete):
                return reason
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 1.0)

    def _close_listeners(self) -> None:
        for group in self._listeners:
            for sock in group:
                sock.close()
        self._listeners = []

    # --- workers -------------------------------------------------------------------------------------

    async def _start_all(self) -> str:
        """Start every worker and wait until all serve; the first failure's reason, or ""."""
        assert self._loop is not None
        self._ready_waiter = self._loop.create_future()
        for slot in self.slots:
            self._spawn(slot)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready_waiter), START_TIMEOUT)
        except asyncio.TimeoutError:
            return f"workers did not become ready within {START_TIMEOUT:.0f} s"
        finally:
            self._ready_waiter = None
        failed = [slot for slot in self.slots if not slot.ready]
        if not failed:
            return ""
        return failed[0].error or f"worker {failed[0].index} exited during start"

    def _spawn(self, slot: _Slot) -> None:
        assert self.quota is not None
        parent_end, child_end = ipc.socketpair()
        env = {k: v for k, v in self.environ.items() if k not in _CHILD_ENV_DROP}
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(relay.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH", "")]))
        kernel_maps = self.kernel.map_fds if self.kernel is not None else {}
        fds = [child_end.fileno(), self.quota.fd, *(sock.fileno() for _, sock in slot.sockets), *kernel_maps.values()]
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "relay.process.worker", "--control-fd", str(child_end.fileno())],
                pass_fds=fds,
                env=env,
            )
        except OSError as error:
            parent_end.close()
            child_end.close()
            slot.error = f"cannot start worker {slot.index}: {error}"
            self._worker_gone(slot, None)
            return
        finally:
            child_end.close()
        slot.process, slot.control = process, parent_end
        slot.ready, slot.error, slot.started_at = False, "", time.monotonic()
        parent_end.setblocking(False)
        start = {
            "type": "start",
            "worker": slot.index,
            "config": ipc.config_to_wire(self.config),
            "listeners": [[n, sock.fileno()] for n, sock in slot.sockets],
            "quota_fd": self.quota.fd,
            "port_range": list(slot.port_range),
            "draining": self.control.draining,
            "kernel_maps": kernel_maps,
        }
        ipc.send(parent_end, start)
        assert self._loop is not None
        self._loop.add_reader(parent_end.fileno(), self._on_message, slot)

    def _on_message(self, slot: _Slot) -> None:
        assert slot.control is not None
        try:
            messages = ipc.receive(slot.control)
        except (EOFError, ValueError):
            self._worker_gone(slot, slot.process)
            return
        for message in messages:
            kind = message["type"]
            if kind == "stats":
                self.aggregator.update(slot.name, message["snapshot"])
                self._scrape_answered(slot, message.get("id"))
            elif kind == "ready":
                slot.ready = True
                _log.info("worker_ready", worker=slot.index, pid=slot.process.pid if slot.process else 0)
                self._check_all_ready()
            elif kind == "failed":
                slot.error = str(message.get("error", ""))
            elif kind == "reloaded" and not message.get("ok"):
                _log.error("worker_reload_failed", worker=slot.index, detail=str(message.get("error", "")))

    def _worker_gone(self, slot: _Slot, process: subprocess.Popen[bytes] | None) -> None:
        """The control socket closed: the worker exited (or is about to). Clean up, then restart it."""
        assert self._loop is not None
        if slot.control is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(slot.control.fileno())
            slot.control.close()
            slot.control = None
        was_ready, slot.ready, slot.process = slot.ready, False, None
        self._scrape_answered(slot, None, gone=True)
        code = _reap(process)
        self.aggregator.retire(slot.name)
        if self.quota is not None:
            self.quota.reset_worker(slot.index)
        self._purge_kernel_entries(slot)
        self._check_all_ready()
        if self._stopping or self.control.stopping or (not was_ready and self._ready_waiter is not None):
            return  # stopping, or failing to start: no restart (run() reports the failure)
        quick = time.monotonic() - slot.started_at < STABLE_AFTER
        slot.quick_failures = slot.quick_failures + 1 if quick else 0
        _log.error(
            "worker_died",
            worker=slot.index,
            exit_code=code,
            detail=slot.error or "its allocations are lost; their clients allocate again",
        )
        if slot.quick_failures >= MAX_QUICK_FAILURES:
            _log.error("worker_keeps_failing", worker=slot.index, failures=slot.quick_failures)
            self._exit_code = 1
            self.control.request_stop(f"worker {slot.index} keeps failing")
            return
        delay = min(30.0, 0.5 * 2 ** max(0, slot.quick_failures - 1))
        slot.restart = self._loop.call_later(delay, self._restart, slot)

    def _purge_kernel_entries(self, slot: _Slot) -> None:
        """A worker's allocations died with it; the kernel must stop forwarding for them at once (their
        relay ports are the worker's slice, which its replacement reuses)."""
        if self.kernel is None:
            return
        try:
            removed = self.kernel.program.purge_relay_ports(*slot.port_range)
        except OSError as error:
            _log.error("kernel_purge_failed", worker=slot.index, detail=str(error))
            return
        if removed:
            _log.info("kernel_entries_purged", worker=slot.index, entries=removed)

    def _restart(self, slot: _Slot) -> None:
        slot.restart = None
        if self._stopping or self.control.stopping or slot.process is not None:
            return
        self.restarts += 1
        _log.warning("worker_restart", worker=slot.index, restarts=self.restarts)
        self._spawn(slot)

    def _check_all_ready(self) -> None:
        waiter = self._ready_waiter
        if waiter is None or waiter.done():
            return
        if all(slot.ready for slot in self.slots) or any(
            slot.process is None and not slot.ready for slot in self.slots
        ):
            waiter.set_result(None)

    async def _stop_all(self) -> None:
        self._stopping = True
        for slot in self.slots:
            if slot.restart is not None:
                slot.restart.cancel()
                slot.restart = None
            if slot.control is not None:
                ipc.send(slot.control, {"type": "stop"})
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(slot.process is not None for slot in self.slots):
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is not None:
                    self._worker_gone(slot, slot.process)
            await asyncio.sleep(0.05)
        for slot in self.slots:
            if slot.process is not None:
                _log.warning("worker_killed", worker=slot.index, detail=f"did not stop within {STOP_GRACE:.0f} s")
                slot.process.kill()
                self._worker_gone(slot, slot.process)

    def _broadcast(self, message: dict[str, Any]) -> None:
        for slot in self.slots:
            if slot.control is not None and not ipc.send(slot.control, message):
                _log.warning("worker_unreachable", worker=slot.index, message=message["type"])

    # --- metrics -------------------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Ask every worker for its counters now and wait (briefly) for the answers; True if every
        serving worker answered (else the slow ones' last pushed counts stand)."""
        assert self._loop is not None
        self._scrape_id += 1
        request_id = self._scrape_id
        pending = {slot.index for slot in self.slots if slot.control is not None}
        if not pending:
            return all(slot.control is None and slot.restart is None for slot in self.slots)
        future: asyncio.Future[None] = self._loop.create_future()
        self._scrape_waiters[request_id] = (pending, future)
        self._broadcast({"type": "snapshot", "id": request_id})
        try:
            await asyncio.wait_for(future, SCRAPE_WAIT)
        except asyncio.TimeoutError:
            return False
        finally:
            self._scrape_waiters.pop(request_id, None)
        return True

    def _scrape_answered(self, slot: _Slot, request: object, gone: bool = False) -> None:
        for request_id, (pending, future) in list(self._scrape_waiters.items()):
            if gone or request == request_id:
                pending.discard(slot.index)
                if not pending and not future.done():
                    future.set_result(None)

    # --- control -------------------------------------------------------------------------------------

    def _drain(self) -> None:
        self._broadcast({"type": "drain"})
        self.notifier.status(f"draining, {self.allocations()} allocations left")

    def _reload(self) -> None:
        """SIGHUP / POST /reload: raises (keeping the running configuration) if the new one is bad."""
        self.notifier.reloading()
        try:
            loaded = load_config(self.argv, self.environ)
            if not loaded.ok or loaded.config is None:
                raise ValueError(
                    "configuration has errors, keeping the running one: " + "; ".join(map(str, loaded.errors))
                )
            applied, needs_restart = apply_reload(self.loaded, loaded.config)
            new = dataclasses.replace(applied, nonce_secret=self.nonce_secret)
            if any(x.transport == "tls" for x in new.listeners) and new.cert_file and new.key_file:
                ServerTls(new.cert_file, new.key_file, new.tls_min_version, new.tls_ciphers)  # bad cert: raise
            self._broadcast({"type": "reload", "config": ipc.config_to_wire(new)})
            self.control.drain_timeout = new.drain_timeout
            self.control.drain_min_allocations = new.drain_min_allocations
            configure_logging(new.log_level, new.log_format)
            self.loaded, self.config = applied, new
            if needs_restart:
                _log.warning("reload_needs_restart", fields=",".join(needs_restart))
        finally:
            self.notifier.ready()


def _reap(process: subprocess.Popen[bytes] | None) -> int | None:
    """The worker's exit code (it closed its control socket, so it is exiting: wait briefly)."""
    if process is None:
        return None
    try:
        return process.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _cannot_start(error: object) -> int:
    _log.error("start_failed", detail=str(error))
    print(f"bbb-turn-relay: cannot start: {error}", file=sys.stderr)
    return 1
