"""Operating the relay: the admin HTTP endpoint (`admin`), drain/reload/stop control and signals
(`control`), Prometheus metrics (`metrics`), structured logs with secrets kept out (`logs`) and systemd
readiness/watchdog (`systemd`). Imports nothing of the protocol or the sockets."""
