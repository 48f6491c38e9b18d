"""Command line entry point: `python -m relay -c FILE` or the `bbb-turn-relay` console script.

Loads and validates the configuration (relay.config). With `workers` = 1 it runs one relay
process: the TURN listeners (relay.server), the admin endpoint with /metrics, /healthz, /readyz and
POST /drain (relay.ops.admin), signal handling (SIGUSR1 drain, SIGHUP reload, SIGTERM stop; relay.ops.control)
and systemd readiness (relay.ops.systemd). With more (`workers` = 0, the default, means one per CPU) this
process becomes the supervisor of that many worker processes (relay.process.workers, relay.process.worker) and keeps
the admin endpoint, signals and systemd to itself. Exit codes: 0 after a drain or a stop, 1 when the
relay cannot start (a port in use, a missing certificate), 2 for configuration errors (and
`--check-config` finding any).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from relay import __version__
from relay.config import RelayConfig, apply_reload, config_summary, help_text, load_config
from relay.ops.admin import start_admin
from relay.ops.control import RelayControl, install_signal_handlers
from relay.ops.logs import configure_logging, get_logger
from relay.ops.metrics import RelayStats
from relay.ops.systemd import SystemdNotifier
from relay.policy.tls import ServerTls
from relay.process.workers import Supervisor, worker_count
from relay.server.app import RelayServer
from relay.server.kernel import offload

_log = get_logger("relay.cli")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if environ is None else environ)
    result = load_config(argv, environ)
    if result.action == "help":
        print(help_text())
        return 0
    if result.action == "version":
        print(f"bbb-turn-relay {__version__}")
        return 0
    if result.action == "check":
        print(result.report())
        return result.exit_code
    if not result.ok or result.config is None:
        print(result.report(), file=sys.stderr)
        return 2
    config = result.config
    configure_logging(config.log_level, config.log_format)
    for problem in result.warnings:
        _log.warning("config_warning", key=problem.key, detail=str(problem))
    workers = worker_count(config)
    try:
        if workers > 1:
            supervisor = Supervisor(
                config, workers, argv=argv, environ=environ, notifier=SystemdNotifier.from_environment(environ)
            )
            return run_event_loop(supervisor.run())
        return run_event_loop(_serve(config, argv, environ))
    except KeyboardInterrupt:
        return 0


def run_event_loop(coroutine: object) -> int:
    """Run `coroutine` to completion on uvloop when installed (the packet path's wake-ups are cheaper
    there), else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    if hasattr(uvloop, "run"):  # uvloop >= 0.18
        return uvloop.run(coroutine)  # type: ignore[arg-type]
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def _cannot_start(error: object) -> int:
    _log.error("start_failed", detail=str(error))
    print(f"bbb-turn-relay: cannot start: {error}", file=sys.stderr)
    return 1


async def _serve(config: RelayConfig, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """One relay process; with kernel-offload it loads the program first (user space serves what it does not)."""
    notifier = SystemdNotifier.from_environment(environ)
    control = RelayControl(config.drain_timeout, config.drain_min_allocations)
    stats = RelayStats()
    try:
        kernel = offload.start_for(config)
    except offload.KernelOffloadRequired as error:
        return _cannot_start(error)
    try:
        return await _serve_with(config, argv, environ, notifier, control, stats, kernel)
    finally:
        if kernel is not None:
            kernel.stop()


async def _serve_with(
    config: RelayConfig,
    argv: Sequence[str],
    environ: Mapping[str, str],
    notifier: SystemdNotifier,
    control: RelayControl,
    stats: RelayStats,
    kernel: offload.Offload | None,
) -> int:
    loop = asyncio.get_running_loop()
    try:
        tls = (
            ServerTls(config.cert_file, config.key_file, config.tls_min_version, config.tls_ciphers)
            if config.cert_file and config.key_file and any(x.transport == "tls" for x in config.listeners)
            else None
        )
        mirror = kernel.mirror() if kernel is not None else None
        server = RelayServer(config, stats=stats, draining=lambda: control.draining, tls=tls, mirror=mirror)
        await server.start()
    except (OSError, ValueError) as error:
        return _cannot_start(error)
    snapshot = stats.snapshot if kernel is None else lambda: kernel.with_totals(stats.snapshot())
    admin = await start_admin(control, snapshot, config.admin_host, config.admin_port)
    if admin is None:
        await server.close()
        return 1

    current = [config]

    def reload() -> None:
        notifier.reloading()
        try:
            loaded = load_config(argv, environ)
            if not loaded.ok or loaded.config is None:
                raise ValueError(
                    "configuration has errors, keeping the running one: " + "; ".join(map(str, loaded.errors))
                )
            new, needs_restart = apply_reload(current[0], loaded.config)
            server.reload(new)
            control.drain_timeout = new.drain_timeout
            control.drain_min_allocations = new.drain_min_allocations
            configure_logging(new.log_level, new.log_format)
            current[0] = new
            if needs_restart:
                _log.warning("reload_needs_restart", fields=",".join(needs_restart))
        finally:
            notifier.ready()

    control.on_reload(reload)
    control.on_drain(lambda: notifier.status(f"draining, {server.allocation_count} allocations left"))
    remove_signals = install_signal_handlers(control, loop)
    watchdog = notifier.start_watchdog()
    control.mark_ready()
    notifier.ready(f"serving on {len(server.addresses)} listeners")
    _log.info("started", version=__version__, **{k: str(v) for k, v in config_summary(config).items()})
    try:
        reason = await control.wait_for_exit(lambda: server.allocation_count)
    finally:
        remove_signals()
        if watchdog is not None:
            watchdog.cancel()
    notifier.stopping(reason)
    _log.info("stopping", reason=reason, allocations=server.allocation_count)
    await admin.close()
    await server.close()
    return 0
