"""proxy/lib.sh for real under bash: the cluster proxy follows the fleet and never proxies anything else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
PROXY = ("common/lib.sh", "proxy/lib.sh")


@pytest.fixture
def locations(shell) -> Path:
    """aws answers from `ec2-answer` (FAIL = API error); nginx -t passes unless `nginx-bad` exists."""
    answer = shell.root / "ec2-answer"
    shell.shim("aws", f'[[ $(cat {answer}) == FAIL ]] && {{ echo Throttling >&2; exit 255; }}\ncat {answer}')
    shell.shim("nginx", f"[[ ! -e {shell.root}/nginx-bad ]]")
    shell.shim("systemctl")
    path = shell.root / "nginx" / "bbb-on-aws" / "locations.conf"
    shell.env["NGINX_LOCATIONS"] = str(path)
    return path


def sync(shell, answer: str):
    (shell.root / "ec2-answer").write_text(answer)
    return shell.run("sync_proxy_locations bbb bbb.example.com", libs=PROXY)


def reloads(shell) -> int:
    return sum(1 for c in shell.calls("systemctl") if c[1:] == ["reload", "nginx"])


def blocks(text: str) -> list[str]:
    return re.findall(r"^location (\S+) \{$", text, re.MULTILINE)


def test_one_literal_block_per_registered_server(shell, locations: Path) -> None:
    result = sync(shell, "i-0bbbbbbbbbbbbbbbb\ti-0aaaaaaaaaaaaaaaa\n")
    assert result.returncode == 0, result.stderr
    text = locations.read_text()
    assert blocks(text) == ["/bbb-0aaaaaaaaaaaaaaaa/html5client/", "/bbb-0aaaaaaaaaaaaaaaa/bigbluebutton/api",
                            "/bbb-0bbbbbbbbbbbbbbbb/html5client/", "/bbb-0bbbbbbbbbbbbbbbb/bigbluebutton/api"]
    assert "proxy_pass https://bbb-0aaaaaaaaaaaaaaaa.bbb.example.com/bbb-0aaaaaaaaaaaaaaaa/html5client/;" in text
    assert "proxy_pass https://bbb-0bbbbbbbbbbbbbbbb.bbb.example.com/bigbluebutton/api;" in text
    assert text.count("proxy_ssl_verify on;") == 4
    assert "~" not in text and "$host" not in text  # no regex location, no variable upstream
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert reloads(shell) == 1
    (call,) = shell.calls("aws")
    assert "Name=tag:bbb-on-aws:role,Values=bbb" in call
    assert "Name=tag-key,Values=bbb-on-aws:ready" in call
    assert "Name=tag:bbb-on-aws:environment,Values=bbb" in call


def test_malformed_ids_from_the_api_are_never_templated(shell, locations: Path) -> None:
    result = sync(shell, "i-0aaaaaaaaaaaaaaaa\ti-0bad;evil.example.com\tother\n")
    assert result.returncode == 0
    assert blocks(locations.read_text()) == ["/bbb-0aaaaaaaaaaaaaaaa/html5client/",
                                             "/bbb-0aaaaaaaaaaaaaaaa/bigbluebutton/api"]
    assert "evil" not in locations.read_text()


def test_follows_the_fleet_and_only_reloads_on_change(shell, locations: Path) -> None:
    sync(shell, "i-0aaaaaaaaaaaaaaaa\n")
    sync(shell, "i-0aaaaaaaaaaaaaaaa\n")
    assert reloads(shell) == 1
    sync(shell, "i-0aaaaaaaaaaaaaaaa\ti-0cccccccccccccccc\n")
    assert "/bbb-0cccccccccccccccc/html5client/" in blocks(locations.read_text())
    sync(shell, "")
    assert blocks(locations.read_text()) == []
    assert reloads(shell) == 3


def test_api_error_keeps_the_current_locations(shell, locations: Path) -> None:
    sync(shell, "i-0aaaaaaaaaaaaaaaa\n")
    before = locations.read_text()
    result = sync(shell, "FAIL")
    assert result.returncode == 1
    assert "keeping the current proxy locations" in result.stderr
    assert locations.read_text() == before
    assert reloads(shell) == 1


def test_a_config_nginx_rejects_is_rolled_back(shell, locations: Path) -> None:
    sync(shell, "i-0aaaaaaaaaaaaaaaa\n")
    before = locations.read_text()
    (shell.root / "nginx-bad").write_text("")
    result = sync(shell, "i-0aaaaaaaaaaaaaaaa\ti-0dddddddddddddddd\n")
    assert result.returncode == 1
    assert "nginx rejected the new locations" in result.stderr
    assert locations.read_text() == before
    assert reloads(shell) == 1


def test_sync_script_and_readiness(shell, locations: Path) -> None:
    (shell.root / "conf" / "params.env").write_text("ENV_NAME=bbb\nDOMAIN=bbb.example.com\n")
    (shell.root / "ec2-answer").write_text("i-0aaaaaaaaaaaaaaaa\n")
    result = shell.run(f"bash {USERDATA}/proxy/sync.sh")
    assert result.returncode == 1 and "params.env lacks BBB_HOST_DOMAIN" in result.stderr
    (shell.root / "conf" / "params.env").write_text(
        "ENV_NAME=bbb\nDOMAIN=bbb.example.com\nBBB_HOST_DOMAIN=fleet.bbb.example.com\n")
    result = shell.run(f"bash {USERDATA}/proxy/sync.sh")
    assert result.returncode == 0, result.stderr
    assert "proxy_pass https://bbb-0aaaaaaaaaaaaaaaa.fleet.bbb.example.com/" in locations.read_text()
    shell.shim("curl", f"[[ -e {shell.root}/nginx-up ]]")
    result = shell.run("INSTANCE_ID=i-0proxy; proxy_become_ready 30 5 || echo not-ready", libs=PROXY)
    assert result.stdout.strip() == "not-ready"
    assert not [c for c in shell.calls("aws") if "create-tags" in c]
    (shell.root / "nginx-up").write_text("")
    result = shell.run("INSTANCE_ID=i-0proxy; proxy_become_ready 30 5", libs=PROXY)
    assert result.returncode == 0, result.stderr
    assert next(c for c in shell.calls("aws") if "create-tags" in c)[4] == "i-0proxy"
