"""The wheel's one build step beyond setuptools' defaults: compile the TC program (relay/server/kernel)
into the built package, so the wheel ships `tc_relay.bpf.o` and the TURN hosts never compile anything.
Without clang the wheel is still built, with a note saying why the object is missing (build.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

_BUILDER = Path(__file__).resolve().parent / "server" / "kernel" / "build.py"


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


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__; importing it does nothing
    setup(cmdclass={"build_py": BuildPyWithBpf})
