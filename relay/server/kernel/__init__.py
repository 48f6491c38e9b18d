"""In-kernel forwarding of TURN data over UDP, IPv4 and IPv6 (issue 12).

  tc_relay.bpf.c  the TC ingress program: ChannelData and Send indications from clients, datagrams from
                  peers (ChannelData or Data indications back), per-entry and per-path counters;
                  tc_relay6.h is its IPv6 half
  build.py        compiles it when the wheel is built (relay/setup.py); nothing compiles on the hosts
  libbpf.py       the system's libbpf through ctypes (0.5 and 1.x)
  loader.py       `TcRelay`: loads, attaches and detaches the program
  mapset.py       `MapSet`: the maps by descriptor (a worker's view: `MapSet.from_fds`), counters, purge
  maps.py         the map layouts, the one place the Python side defines them
  mirror.py       `KernelMirror`: the maps follow each allocation's permissions and channels
  offload.py      `start(mode, listening_ip, relay_ip)`: off | auto | on, the interface and its MTU
  __main__.py     `python -m relay.server.kernel detach|status IFACE` (ExecStopPost after a crash)

The relay does not use it yet: the supervisor must call `offload.start` once per host (with the value
of a new `kernel-offload` key) and pass the map descriptors to each worker (pass_fds; the worker opens
them with `MapSet.from_fds` and syncs its own allocations with a `KernelMirror`), and purge a dead
worker's entries by its relay port slice (`MapSet.purge_relay_ports`); `TurnCore` must call
`KernelMirror.sync` after every change to an allocation's permissions or channels and `forget` when it
ends; the unit must grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (loader.CAPABILITIES says why) and
detach in ExecStopPost; the metrics must read `MapSet.totals()`.
"""
