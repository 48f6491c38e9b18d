"""Kernel-path tests: the program is compiled here from the source (as the wheel build does) and loaded
into the running kernel (root or CAP_BPF + CAP_NET_ADMIN; this machine and CI have both)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from netns_kit import relay_source  # noqa: E402
from relay_process_kit import REPO  # noqa: E402

from relay.server.kernel import build  # noqa: E402
from relay.server.kernel.loader import OBJECT_NAME, TcRelay  # noqa: E402


@pytest.fixture(scope="session")
def bpf_object(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    built = build.build(tmp_path_factory.mktemp("bpf"))
    assert built is not None, "clang is missing: ./scripts/install.sh --test-tools installs it"
    return built.read_bytes()


@pytest.fixture(scope="session")
def loaded(bpf_object: bytes) -> Iterator[TcRelay]:
    with TcRelay(bpf_object) as program:
        yield program


@pytest.fixture()
def relay(loaded: TcRelay) -> TcRelay:
    """The loaded program, enabled, with empty maps and zero counters."""
    loaded.clear()
    loaded.configure(enabled=True, mtu=1500)
    return loaded


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory, bpf_object: bytes) -> Path:
    """The relay's source with the program where the wheel ships it (relay.server.kernel's folder), for
    the tests that run the whole relay process (relay_process_kit)."""
    return relay_source(REPO, tmp_path_factory.mktemp("relay-package"), {OBJECT_NAME: bpf_object})
