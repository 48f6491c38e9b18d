"""Socket I/O for the relay: UDP/TCP/TLS listeners, relay sockets from the port range, the packet path
(`forwarding`), and `RelayServer` which wires them to the protocol core and the operations modules."""
