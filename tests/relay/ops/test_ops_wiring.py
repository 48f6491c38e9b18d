"""The ops modules wired together the way the server does it: config -> TLS, metrics, admin, control,
systemd; then a SIGHUP reload (new secret, peers and certificate) and a SIGUSR1 drain to exit."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
from pathlib import Path

from relay.config import apply_reload, load_config
from relay.ops.admin import AdminServer
from relay.ops.control import RelayControl, install_signal_handlers
from relay.ops.logs import clear_registered_secrets
from relay.ops.metrics import RelayCollector, RelayStats, build_registry, render_metrics
from relay.ops.systemd import SystemdNotifier
from relay.policy.tls import ServerTls


def make_cert(path: Path, name: str) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(path / f"{name}.key"),
            "-out",
            str(path / f"{name}.crt"),
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
        ],
        check=True,
        capture_output=True,
    )


async def request(port: int, method: str, path: str) -> tuple[int, bytes]:
    def call() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    return await asyncio.to_thread(call)


def test_reload_then_drain_end_to_end(tmp_path):
    make_cert(tmp_path, "old")
    make_cert(tmp_path, "new")
    (tmp_path / "secret").write_text("first-secret-0123456789abcdef\n")
    (tmp_path / "peers").write_text("203.0.113.10\n")
    (tmp_path / "secret").chmod(0o600)
    (tmp_path / "tls.crt").write_bytes((tmp_path / "old.crt").read_bytes())
    (tmp_path / "tls.key").write_bytes((tmp_path / "old.key").read_bytes())
    (tmp_path / "relay.conf").write_text(
        "realm=turn.example.org\n"
        f"auth-secret-file={tmp_path / 'secret'}\n"
        f"allowed-peers-file={tmp_path / 'peers'}\n"
        f"cert={tmp_path / 'tls.crt'}\n"
        f"pkey={tmp_path / 'tls.key'}\n"
        "tls-listening-port=5349\n"
    )
    argv = ["-c", str(tmp_path / "relay.conf")]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(5)

    def notifications() -> list[str]:
        return [notify.recv(4096).decode()]

    async def scenario() -> str:
        loaded = load_config(argv, {})
        assert loaded.ok, loaded.report()
        state = {"config": loaded.config}
        assert state["config"] is not None
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        tls = ServerTls(str(state["config"].cert_file), str(state["config"].key_file))
        stats = RelayStats()
        control = RelayControl(state["config"].drain_timeout, state["config"].drain_min_allocations)
        registry = build_registry(RelayCollector(stats.snapshot, lambda: control.draining))

        def reload() -> None:
            notifier.reloading()
            result = load_config(argv, {})
            if not result.ok:
                notifier.ready()
                raise RuntimeError("; ".join(str(p) for p in result.errors))
            state["config"], restart = apply_reload(state["config"], result.config)
            assert restart == ()
            tls.reload()
            notifier.ready()

        control.on_reload(reload)
        control.on_drain(lambda: notifier.status("draining"))
        admin = AdminServer(control, lambda: render_metrics(registry), "127.0.0.1", 0)
        await admin.start()
        remove = install_signal_handlers(control, asyncio.get_running_loop())
        try:
            control.mark_ready()
            notifier.ready("serving")
            assert notifications() == ["READY=1\nSTATUS=serving"]
            assert await request(admin.port, "GET", "/readyz") == (200, b"ready\n")
            stats.allocations = 2

            # certbot renewal + secret rotation + a new BBB server, then SIGHUP.
            (tmp_path / "tls.crt").write_bytes((tmp_path / "new.crt").read_bytes())
            (tmp_path / "tls.key").write_bytes((tmp_path / "new.key").read_bytes())
            (tmp_path / "secret").write_text("second-secret-0123456789abcdef\nfirst-secret-0123456789abcdef\n")
            (tmp_path / "peers").write_text("203.0.113.10\n203.0.113.11\n")
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0.1)
            assert notifications()[0].startswith("RELOADING=1\nMONOTONIC_USEC=")
            assert notifications() == ["READY=1"]
            assert state["config"].auth_secrets[0] == "second-secret-0123456789abcdef"
            assert len(state["config"].allowed_peers) == 2
            assert tls.generation == 2

            # A broken edit is refused by POST /reload and the running config stays.
            (tmp_path / "peers").write_text("not-an-ip\n")
            status, body = await request(admin.port, "POST", "/reload")
            assert status == 500 and b"not-an-ip" in body
            assert len(state["config"].allowed_peers) == 2
            notifications(), notifications()  # RELOADING, READY

            # Scale-in: SIGUSR1, allocations end, the relay exits 0.
            waiter = asyncio.create_task(control.wait_for_exit(lambda: stats.allocations, poll_interval=0.01))
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.05)
            assert notifications() == ["STATUS=draining"]
            assert await request(admin.port, "GET", "/readyz") == (503, b"draining\n")
            assert b"turn_draining 1.0" in (await request(admin.port, "GET", "/metrics"))[1]
            stats.allocations = 0
            reason = await asyncio.wait_for(waiter, 5)
            notifier.stopping(reason)
            assert notifications() == ["STOPPING=1\nSTATUS=drained"]
            return reason
        finally:
            remove()
            await admin.close()

    try:
        assert asyncio.run(asyncio.wait_for(scenario(), 30)) == "drained"
    finally:
        notify.close()
        clear_registered_secrets()
