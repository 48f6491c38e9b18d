"""In-kernel forwarding of TURN data over UDP/IPv4 (issue 12): a TC ingress program (`tc_relay.bpf.c`),
compiled when the wheel is built (`build.py`), loaded and fed through the system's libbpf (`loader.py`),
with its map layouts in one place (`maps.py`). The Python control plane decides; the program forwards."""
