"""The wheel's build steps beyond setuptools' defaults:
* compile the TC program (relay/server/kernel) into the built package, so the wheel ships `tc_relay.bpf.o`
  (without clang the wheel is still built, with a note saying why the object is missing: build.py);
* compile the UDP forwarding loop `relay.server._fastpath` (C, limited API 3.10: one cp310-abi3 wheel for
  every Python from 3.10, Ubuntu 22.04's included). Without a C compiler or Python's headers the wheel is
  built without it and ships `_fastpath.missing`, the sentence the relay logs when it falls back to the
  pure-Python path (relay.server.cpath). Nothing is compiled on the TURN hosts.
"""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

_HERE = Path(__file__).resolve().parent
_BUILDER = _HERE / "server" / "kernel" / "build.py"
LIMITED_API = "0x030A0000"  # Python 3.10, the TURN hosts' (Ubuntu 22.04); the C source defines the same
FASTPATH_MISSING = "_fastpath.missing"  # relay.server.cpath reads it (a test keeps the two names equal)


class BuildPyWithBpf(build_py):
    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        # package-dir maps this folder to `relay`: keep this file out of the package it builds.
        modules = super().find_package_modules(package, package_dir)
        return [entry for entry in modules if not (package == "relay" and entry[1] == "setup")]

    def run(self) -> None:
        super().run()
        spec = importlib.util.spec_from_file_location("relay_bpf_build", _BUILDER)
        assert spec is not None and spec.loader is not None
        builder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(builder)
        built = builder.build(Path(self.build_lib) / "relay" / "server" / "kernel")
        self.announce(f"BPF object: {built or 'not built, clang is missing'}", level=2)


class OptionalBuildExt(build_ext):
    """A missing compiler or missing headers leave the pure-Python path, with a note saying why; a C error in
    the source itself still fails the build (that is a bug to fix, not a machine to tolerate)."""

    def run(self) -> None:
        note = (_HERE if self.inplace else Path(self.build_lib) / "relay") / "server" / FASTPATH_MISSING
        missing = _missing_tools()
        if missing:
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(
                f"the wheel was built without the compiled packet path: {missing} on the build machine (install "
                "gcc and python3-dev there and rebuild the wheel)\n"
            )
            self.announce(f"C packet path: not built, {missing}", level=2)
            return
        super().run()
        note.unlink(missing_ok=True)


def _missing_tools() -> str | None:
    """What keeps this machine from compiling the extension, or None."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"the C compiler {compiler} was not found"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        return f"Python's headers ({headers}) were not found"
    return None


FASTPATH = Extension(
    "relay.server._fastpath",
    sources=["server/_fastpath.c"],
    depends=["server/_fastpath_table.h", "server/_fastpath_stream.h"],
    define_macros=[("Py_LIMITED_API", LIMITED_API)],
    py_limited_api=True,
    extra_compile_args=["-O2", "-Wall", "-Werror", "-fno-strict-aliasing"],
)

if __name__ == "__main__":  # setuptools' build backend runs this file as __main__; importing it does nothing
    setup(
        cmdclass={"build_py": BuildPyWithBpf, "build_ext": OptionalBuildExt},
        ext_modules=[FASTPATH],
        options={"bdist_wheel": {"py_limited_api": "cp310"}},
    )
