"""Compile `tc_relay.bpf.c` with clang when the wheel is built (relay/setup.py runs this file by path).

Nothing is compiled on the TURN hosts: the object ships in the wheel. When clang or the BPF headers
(libbpf-dev, linux-libc-dev) are missing at build time, the wheel is built without the object and with
`tc_relay.bpf.missing` instead, one sentence the relay logs when it falls back to user space. This file
imports nothing from the relay (it runs before the package exists) and only the standard library.

    python relay/server/kernel/build.py OUTPUT_DIR    compile into OUTPUT_DIR, print what happened
    python relay/server/kernel/build.py --identity    the compiler's identity (part of the wheel's asset hash)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

SOURCE = Path(__file__).with_name("tc_relay.bpf.c")
OBJECT_NAME = "tc_relay.bpf.o"  # the loader's names (relay/server/kernel/loader.py) are checked equal by a test
MISSING_NOTE = "tc_relay.bpf.missing"
CLANG = "clang"


class BpfBuildError(RuntimeError):
    """clang is present but could not compile the program (a source or header problem, not a missing tool)."""


def compiler_identity() -> str:
    """clang's version line, or "none": a wheel built with a different compiler is a different asset."""
    clang = shutil.which(CLANG)
    if clang is None:
        return "none"
    run = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False)
    return run.stdout.splitlines()[0].strip() if run.returncode == 0 and run.stdout else "unusable"


def command(output: Path, clang: str = CLANG, source: Path | None = None, defines: tuple[str, ...] = ()) -> list[str]:
    """clang's command line for a TC program (`source`, SOURCE by default; `defines` as -D NAME=VALUE)."""
    source = source or SOURCE  # read when called: tests point SOURCE at a broken copy
    include = (
        [f"-I/usr/include/{sysconfig.get_config_var('MULTIARCH')}"] if sysconfig.get_config_var("MULTIARCH") else []
    )
    # -g: BTF, which libbpf needs for the map definitions; no host-specific flag, so one object serves
    # x86-64 and arm64 hosts alike (BPF is little-endian on both). The prefix maps keep the build folder
    # out of the debug info: the same source and compiler give the same bytes wherever they are built.
    reproducible = [f"-fdebug-prefix-map={source.parent}=.", "-fdebug-compilation-dir=."]
    return [
        clang,
        "-target",
        "bpf",
        "-O2",
        "-g",
        "-Wall",
        "-Werror",
        *reproducible,
        *include,
        *(f"-D{define}" for define in defines),
        "-c",
        str(source),
        "-o",
        str(output),
    ]


def build(directory: Path) -> Path | None:
    """Compile into `directory`; None (and the note file written there) when clang is absent.
    Raises BpfBuildError when clang fails: that is a bug to fix, not a machine to tolerate."""
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / OBJECT_NAME
    note = directory / MISSING_NOTE
    clang = shutil.which(CLANG)
    if clang is None:
        note.write_text(
            "the wheel was built without the in-kernel forwarding program: clang was not found on the build "
            "machine (install clang, libbpf-dev and linux-libc-dev there and rebuild the wheel)\n"
        )
        output.unlink(missing_ok=True)
        return None
    run = subprocess.run(command(output, clang), capture_output=True, text=True, check=False)
    if run.returncode != 0:
        tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-20:])
        raise BpfBuildError(
            f"clang could not compile {SOURCE.name} (exit {run.returncode}); install libbpf-dev and "
            f"linux-libc-dev if headers are missing. Last output:\n{tail}"
        )
    note.unlink(missing_ok=True)
    return output


def main(argv: list[str]) -> int:
    if argv == ["--identity"]:
        print(compiler_identity())
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    built = build(Path(argv[0]))
    print(f"built {built}" if built else f"clang not found: wrote {Path(argv[0]) / MISSING_NOTE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
