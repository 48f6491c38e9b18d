"""`python -m relay.server.kernel detach|status INTERFACE`: the TC filter's operations that must work
without the relay running (ExecStopPost after a crash, an operator checking a host)."""

from __future__ import annotations

import sys

from relay.server.kernel.loader import KernelOffloadUnavailable, attached_program, detach_interface

USAGE = "usage: python -m relay.server.kernel detach|status INTERFACE"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("detach", "status"):
        print(USAGE, file=sys.stderr)
        return 2
    command, interface = argv
    try:
        if command == "detach":
            print(f"detached from {interface}" if detach_interface(interface) else f"nothing attached to {interface}")
        else:
            program = attached_program(interface)
            print(f"program {program} attached to {interface}" if program else f"nothing attached to {interface}")
    except (OSError, KernelOffloadUnavailable) as error:
        print(f"relay.server.kernel {command} {interface}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
