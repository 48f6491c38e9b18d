"""The command itself: installed as the console script `bbb-on-aws`, every subcommand has --help and --json,
usage errors exit 2 with a message, and nothing outside the CLI imports it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from bbb_on_aws.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_console_script_is_declared_and_installed_by_install_sh():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"bbb-on-aws": "bbb_on_aws.cli:main"}
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e ." in install


@pytest.fixture(scope="module")
def only_the_package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which only `bbb_on_aws` is importable, as the editable install maps it (setuptools'
    finder): the command must find the rest of its repository (stacks, settings, lambdas) by itself."""
    directory = tmp_path_factory.mktemp("site")
    (directory / "bbb_on_aws").symlink_to(ROOT / "bbb_on_aws")
    return {"PYTHONPATH": str(directory), "PATH": "/usr/bin:/bin"}


@pytest.mark.parametrize("command", ["probe", "status", "drain", "cost"])
def test_every_subcommand_has_help_and_json(command, only_the_package):
    result = subprocess.run(
        [sys.executable, "-m", "bbb_on_aws", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=only_the_package,
    )
    assert result.returncode == 0, result.stderr
    assert f"usage: bbb-on-aws {command}" in result.stdout and "--json" in result.stdout


def test_runs_from_anywhere(only_the_package):
    result = subprocess.run(
        [sys.executable, "-m", "bbb_on_aws", "cost", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=only_the_package,
    )
    assert result.returncode == 0, result.stderr
    assert '"total": 1116.71' in result.stdout


def test_probe_needs_exactly_one_target(capsys):
    assert main(["probe"]) == 2
    assert "give either a domain or --turn HOST:PORT" in capsys.readouterr().err
    assert main(["probe", "example.org", "--turn", "127.0.0.1:3478"]) == 2


def test_bad_address_and_missing_secret_file_are_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--turn", "no-port"])
    assert exit_info.value.code == 2 and "is not HOST:PORT" in capsys.readouterr().err
    assert main(["probe", "--turn", "127.0.0.1:3478", "--secret-file", str(tmp_path / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_nothing_imports_the_cli():
    pattern = re.compile(r"^\s*(from|import)\s+bbb_on_aws\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("app.py", "stacks", "cdk_constructs", "lambdas", "relay", "userdata", "settings")
        for path in ([ROOT / folder] if folder.endswith(".py") else (ROOT / folder).rglob("*.py"))
        if path.exists() and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_aws_errors_are_messages_not_tracebacks(capsys, monkeypatch, tmp_path):
    for key in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["status", "--environment", "bbb", "--region", "eu-west-1"]) == 2
    assert "Unable to locate credentials" in capsys.readouterr().err
