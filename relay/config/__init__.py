"""The relay's configuration: the `RelayConfig` value, and building it from a coturn-style file,
the environment and command-line flags.

Modules, in the order a load runs: `model` (the shape and defaults, which the protocol core and the
I/O layer read), `keys` (the key table), `sources` (file, environment and command-line parsers),
`builder` and `handlers` (one handler per key), `checks` (cross-key rules, then the value),
`loader` (`load_config`, reload, summary, `--help`). The names below are re-exported here.

Entry point for the CLI (`python -m relay -c FILE`, console script `bbb-turn-relay`):

    result = load_config(sys.argv[1:], os.environ)        # never raises for bad input
    if result.action == "help":    print(help_text()); exit 0
    if result.action == "version": print(version); exit 0
    if result.action == "check":   print(result.report()); exit result.exit_code   (0 = OK, 2 = errors)
    if not result.ok:              print(result.report(), file=sys.stderr); exit 2
    for problem in result.warnings: log.warning("config_warning", key=problem.key, detail=str(problem))
    config = result.config

Reload (SIGHUP / POST /reload): call `load_config` again with the same argv and environ. If it has
errors, keep running on the old config and log them. Otherwise `apply_reload(old, new)` returns the
config to switch to (only `RELOADABLE_FIELDS` change: secrets, users, peer lists, quotas, certificate
paths, logging, drain settings) and the names of changed fields that need a restart (log those).

Sources and precedence: command line > environment > file > defaults, decided per key (a
repeatable key such as `allowed-peer-ip` takes all its values from the highest source that sets it).

* File: coturn's turnserver.conf syntax: `key=value`, `key value`, bare flags, `#` comment lines,
  repeatable keys, values optionally in double quotes. A trailing ` # comment` after a value is
  dropped except for secret keys (taken literally, as coturn does; a warning flags whitespace in them).
* Environment: `BBB_TURN_RELAY_<KEY>` with the key upper-cased and `-` -> `_`
  (`BBB_TURN_RELAY_STATIC_AUTH_SECRET`); list keys (listening-ip, relay-ip, external-ip,
  allowed-peer-ip, denied-peer-ip) take comma-separated values; flags take true/false/1/0/yes/no/on/off.
  `BBB_TURN_RELAY_CONFIG` names the file when `-c` is not given. Unknown `BBB_TURN_RELAY_*` names are errors.
* Command line: `--key=value`, `--key value`, `--flag`, plus `-c FILE`/`--config FILE`,
  `--check-config`, `--version`, `-h`/`--help`.

Every problem names the key, shows the bad value (never a secret's) and what is allowed, with
`file:line`, `env NAME` or `--flag` as its location; all problems are collected and reported at once.
Each coturn key is *supported*, a silent *noop* (already our behaviour), a *warning* (harmless to
ignore: logging, CLI, daemon options) or an *error* (ignoring it would weaken security or change what a
client sees); see `KEYS` or `key_table()` for the full list and the reason for each. Unknown keys are
errors with a "did you mean" hint.

Differences from coturn worth knowing:
* Special-purpose peer addresses (private, loopback, link-local, metadata, multicast, ...) are denied
  by default (relay.policy.peers); `no-loopback-peers`/`no-multicast-peers` are therefore no-ops, and
  `allowed-peer-ip` must not open loopback (unless `allow-loopback-peers`) or cloud metadata addresses.
* `allowed-peers-file` is read here and its networks are merged into `config.allowed_peers`; likewise
  `auth-secret-file` into `auth_secrets` and `nonce-secret-file` into `nonce_secret`. Reloading means
  calling `load_config` again.
* A TLS listener exists when `tls-listening-port` or `cert` is set (coturn's rule; default port 5349)
  and `no-tls` is not; its certificate and key are loaded during validation, so `--check-config`
  catches a bad certificate before a restart does.
* `cipher-list` can only narrow the built-in TLS 1.2 policy (ECDHE + AEAD); other suites are dropped
  with a warning.

Every secret value met while loading is registered with `relay.ops.logs.register_secret`, so it cannot
appear in a log line even if some code later formats it by mistake.
"""

from __future__ import annotations

from relay.config.keys import ALIASES, CLI_ONLY, KEY_INDEX, KEYS, KeySpec
from relay.config.loader import (
    RELOADABLE_FIELDS,
    LoadResult,
    apply_reload,
    config_summary,
    help_text,
    key_table,
    load_config,
)
from relay.config.model import IPNetwork, Listener, RelayConfig, Transport
from relay.config.sources import Problem

__all__ = [
    "ALIASES",
    "CLI_ONLY",
    "KEYS",
    "KEY_INDEX",
    "RELOADABLE_FIELDS",
    "IPNetwork",
    "KeySpec",
    "Listener",
    "LoadResult",
    "Problem",
    "RelayConfig",
    "Transport",
    "apply_reload",
    "config_summary",
    "help_text",
    "key_table",
    "load_config",
]
