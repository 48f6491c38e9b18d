"""In-kernel forwarding of TURN data over UDP/IPv4 (issue 12).

  tc_relay.bpf.c  the TC ingress program: ChannelData and Send indications from clients, datagrams from
                  peers (ChannelData or Data indications back), per-entry and per-path counters
  build.py        compiles it when the wheel is built (relay/setup.py); nothing compiles on the hosts
  loader.py       loads, attaches, detaches and edits the maps through the system's libbpf (ctypes)
  maps.py         the map layouts, the one place the Python side defines them
  mirror.py       `KernelMirror`: the maps follow each allocation's permissions and channels
  __main__.py     `python -m relay.server.kernel detach|status IFACE` (ExecStopPost after a crash)

The relay does not use it yet: `TurnCore` must call `KernelMirror.sync` after every change to an
allocation's permissions or channels and `forget` when it ends; the process must load and attach the
program once per host before the workers fork (they inherit the map descriptors and each syncs its own
allocations), behind a `kernel-offload = off | auto | on` key; the unit must grant CAP_BPF and
CAP_NET_ADMIN and detach in ExecStopPost; the metrics must read `TcRelay.totals()`.
"""
