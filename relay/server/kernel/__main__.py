"""`python -m relay.server.kernel detach|status INTERFACE`: the TC filter's operations that must work
without the relay running (ExecStopPost after a crash, an operator checking a host). INTERFACE `all`
means every interface of this network namespace: the unit's ExecStopPost uses it, since the interface
the relay attached to (the one holding listening-ip) is the host's business, not the unit's."""

from __future__ import annotations

import socket
import sys

from relay.server.kernel.loader import KernelOffloadUnavailable, attached_program, detach_interface

USAGE = "usage: python -m relay.server.kernel detach|status INTERFACE|all"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("detach", "status"):
        print(USAGE, file=sys.stderr)
        return 2
    command, target = argv
    interfaces = [name for _, name in socket.if_nameindex()] if target == "all" else [target]
    failed = False
    for interface in interfaces:
        try:
            if command == "detach":
                # `all` skips interfaces without our filter (no clsact qdisc: the kernel says EINVAL)
                detached = (target != "all" or attached_program(interface) is not None) and detach_interface(interface)
                print(f"detached from {interface}" if detached else f"nothing attached to {interface}")
            else:
                program = attached_program(interface)
                print(f"program {program} attached to {interface}" if program else f"nothing attached to {interface}")
        except (OSError, KernelOffloadUnavailable) as error:
            print(f"relay.server.kernel {command} {interface}: {error}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
