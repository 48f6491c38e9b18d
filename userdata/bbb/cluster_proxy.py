"""Write the BBB-side YAML/JSON settings of the cluster proxy (seed 001) into /etc/bigbluebutton.

Runs on the BBB host with Ubuntu's python3 (3.10) and python3-yaml (a cloud-init dependency). Existing
settings in the override files are kept; only the keys the cluster proxy needs are merged in, so running it
twice gives the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` into a copy of `base` (extra wins on leaves)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def html5_settings(proxy: str, fqdn: str) -> dict[str, Any]:
    server_id = fqdn.split(".", 1)[0]
    return {
        "public": {
            "app": {
                "basename": f"/{server_id}/html5client",
                "bbbWebBase": f"https://{fqdn}/bigbluebutton",
                "learningDashboardBase": f"https://{fqdn}/learning-dashboard",
            },
            "media": {
                "stunTurnServersFetchAddress": f"https://{fqdn}/bigbluebutton/api/stuns",
                "sip_ws_host": fqdn,
            },
            "kurento": {"wsUrl": f"wss://{fqdn}/bbb-webrtc-sfu"},
            "presentation": {"uploadEndpoint": f"https://{fqdn}/bigbluebutton/presentation/upload"},
            "pads": {"url": f"https://{fqdn}/pad"},
        }
    }


def graphql_middleware_settings(proxy: str) -> dict[str, Any]:
    # Host name without the scheme (seed 001).
    return {"server": {"authorized_cross_origin": proxy}}


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} does not hold a YAML mapping; fix or remove it and re-run")
    return loaded


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def apply(etc: Path, proxy: str, fqdn: str) -> None:
    html5 = etc / "bbb-html5.yml"
    _write_atomic(html5, yaml.safe_dump(merge(_read_yaml(html5), html5_settings(proxy, fqdn)), sort_keys=True))

    middleware = etc / "bbb-graphql-middleware.yml"
    merged = merge(_read_yaml(middleware), graphql_middleware_settings(proxy))
    _write_atomic(middleware, yaml.safe_dump(merged, sort_keys=True))

    etherpad = etc / "etherpad.json"
    current: dict[str, Any] = json.loads(etherpad.read_text()) if etherpad.exists() else {}
    origins = [o for o in current.get("cluster_proxies", []) if o != f"https://{proxy}"]
    current["cluster_proxies"] = [*origins, f"https://{proxy}"]
    _write_atomic(etherpad, json.dumps(current, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--etc", type=Path, default=Path("/etc/bigbluebutton"))
    parser.add_argument("--proxy", required=True, help="cluster proxy host name, e.g. bbb-proxy.example.com")
    parser.add_argument("--fqdn", required=True, help="this server's name, e.g. bbb-0abc.example.com")
    args = parser.parse_args(argv)
    try:
        apply(args.etc, args.proxy, args.fqdn)
    except (OSError, ValueError, yaml.YAMLError, json.JSONDecodeError) as error:
        print(f"cluster_proxy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
