"""In-kernel forwarding of TURN data over UDP, IPv4 and IPv6 (issue 12).

  tc_relay.bpf.c  the TC ingress program: ChannelData and Send indications from clients, datagrams from
                  peers (ChannelData or Data indications back), per-entry and per-path counters;
                  tc_relay6.h is its IPv6 half
  build.py        compiles it when the wheel is built (relay/setup.py); nothing compiles on the hosts
  loader.py       loads, attaches, detaches and edits the maps through the system's libbpf (ctypes)
  maps.py         the map layouts, the one place the Python side defines them
  mirror.py       `KernelMirror`: the maps follow each allocation's permissions and channels
  offload.py      `start(mode, listening_ip, relay_ip)`: off | auto | on, the interface and its MTU
  __main__.py     `python -m relay.server.kernel detach|status IFACE` (ExecStopPost after a crash)

The relay does not use it yet: the process must call `offload.start` once per host before the workers
fork (they inherit the map descriptors; each makes its own `Offload.mirror()`), with the value of a new
`kernel-offload` key; `TurnCore` must call `KernelMirror.sync` after every change to an allocation's
permissions or channels and `forget` when it ends; the unit must grant CAP_BPF and CAP_NET_ADMIN and
detach in ExecStopPost; the metrics must read `TcRelay.totals()`.
"""
