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

How the relay uses it (`kernel-offload` = off | auto | on): the single process or the supervisor calls
`offload.start_for(config)` once; workers inherit the map descriptors (pass_fds), open them with
`MapSet.from_fds`, drop the loading capabilities and keep their own allocations' entries with a
`KernelMirror` that `TurnCore` calls through its `AllocationMirror` hook (relay.turn.allocation); the
supervisor purges a dead worker's entries by its relay port slice and detaches after the last worker
stopped; /metrics adds `Offload.with_totals`. The unit grants CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON
(loader.CAPABILITIES says why) and runs `detach all` in ExecStopPost.
"""
