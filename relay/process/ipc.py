"""Messages between the supervisor and its workers: JSON objects, one per SOCK_SEQPACKET message, over
a socketpair only the two processes hold (nothing outside can write to it).

    send(sock, {"type": "drain"})            -> False when the peer is gone or not keeping up
    for message in receive(sock): ...        -> [] when nothing is waiting; raises EOFError when closed

Message types (all carry "type"):
    parent -> worker   start {worker, config, listeners, quota_fd, port_range, draining, kernel_maps}
                       reload {config} | drain | stop | snapshot {id}
    worker -> parent   ready {addresses} | failed {error} | stats {snapshot, id?} | reloaded {ok, error}

`config_to_wire` / `config_from_wire` carry a `RelayConfig` as plain JSON (no pickle: the decoder
builds only the types a RelayConfig holds and rejects anything else).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import socket
from typing import Any

from relay.config import Listener, RelayConfig

MAX_MESSAGE = 4 * 1024 * 1024  # the socket buffers are sized for it; configs are a few kilobytes


def socketpair() -> tuple[socket.socket, socket.socket]:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (parent, child):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MAX_MESSAGE)
    return parent, child


def send(sock: socket.socket, message: dict[str, Any]) -> bool:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"control message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    try:
        sock.send(data)
    except (BlockingIOError, InterruptedError, BrokenPipeError, ConnectionError, OSError):
        return False
    return True


def receive(sock: socket.socket) -> list[dict[str, Any]]:
    """Every message waiting on a non-blocking socket; EOFError once the other side has closed."""
    messages = []
    while True:
        try:
            data = sock.recv(MAX_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return messages
        except ConnectionError as error:
            raise EOFError(str(error)) from None
        if not data:
            raise EOFError("the other process closed the control channel")
        message = json.loads(data)
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ValueError("control message without a type")
        messages.append(message)


def receive_blocking(sock: socket.socket, timeout: float) -> dict[str, Any]:
    sock.settimeout(timeout)
    try:
        data = sock.recv(MAX_MESSAGE)
    finally:
        sock.setblocking(False)
    if not data:
        raise EOFError("the other process closed the control channel")
    message = json.loads(data)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError("control message without a type")
    return message


# --- RelayConfig as JSON ------------------------------------------------------------------------------

_NETWORK_FIELDS = ("allowed_peers", "denied_peers")
_TEXT_TUPLE_FIELDS = ("auth_secrets", "ignored_keys")


def config_to_wire(config: RelayConfig) -> dict[str, Any]:
    wire: dict[str, Any] = {}
    for field in dataclasses.fields(RelayConfig):
        value = getattr(config, field.name)
        if field.name == "listeners":
            wire[field.name] = [dataclasses.asdict(listener) for listener in value]
        elif field.name in _NETWORK_FIELDS:
            wire[field.name] = [str(network) for network in value]
        elif field.name == "static_users":
            wire[field.name] = [[name, password] for name, password in value]
        elif field.name == "nonce_secret":
            wire[field.name] = None if value is None else base64.b64encode(value).decode()
        elif field.name in _TEXT_TUPLE_FIELDS:
            wire[field.name] = list(value)
        elif value is None or isinstance(value, (str, int, float)):
            wire[field.name] = value
        else:
            raise TypeError(f"RelayConfig.{field.name} ({type(value).__name__}) has no wire form")
    return wire


def config_from_wire(wire: dict[str, Any]) -> RelayConfig:
    fields = {field.name: field for field in dataclasses.fields(RelayConfig)}
    unknown = set(wire) - set(fields)
    if unknown:
        raise ValueError(f"unknown configuration fields from the supervisor: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in wire.items():
        if name == "listeners":
            values[name] = tuple(
                Listener(str(x["transport"]), str(x["host"]), int(x["port"]), bool(x["proxy_protocol"]))  # type: ignore[arg-type]
                for x in value
            )
        elif name in _NETWORK_FIELDS:
            values[name] = tuple(ipaddress.ip_network(text) for text in value)
        elif name == "static_users":
            values[name] = tuple((str(user), str(password)) for user, password in value)
        elif name == "nonce_secret":
            values[name] = None if value is None else base64.b64decode(value)
        elif name in _TEXT_TUPLE_FIELDS:
            values[name] = tuple(str(text) for text in value)
        elif value is None or isinstance(value, (str, int, float)):
            values[name] = value
        else:
            raise ValueError(f"configuration field {name} has an unexpected wire value")
    return RelayConfig(**values)
