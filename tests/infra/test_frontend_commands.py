"""The container start scripts of the frontend, run for real under busybox `sh` (Alpine's shell, as in the
Greenlight and Scalelite images) and dash, with the real Ruby doing the percent-encoding.

Only Greenlight itself is replaced: a small `bundle` script on PATH plays `rails runner` (exit 3 = the
account exists, 4 = it does not) and `rake admin:create` (prints the account, password included, as the
rake task does), keeping its state in a file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from cdk_constructs.container_command import Prologue
from cdk_constructs.frontend.greenlight import admin_command
from cdk_constructs.frontend.scalelite import SCALELITE_API_PREPARE

SHELLS = [["busybox", "sh"], ["dash"]]
NASTY = "p@ss/w:rd%^ &x?#[]'\"$`\\é"


def test_the_shells_and_ruby_are_installed():
    missing = [tool for tool in ("busybox", "dash", "ruby") if not shutil.which(tool)]
    assert not missing, f"{missing} missing: run ./scripts/install.sh --test-tools (Debian packages)"


def parts(**changes: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "DB_USER": "green light", "DB_PASSWORD": NASTY, "DB_HOST": "db.internal",
           "DB_PORT": "5432", "DB_NAME": "greenlight", "REDIS_PASSWORD": "t@k/en:%", "REDIS_HOST": "cache.internal",
           "REDIS_PORT": "6379"}
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def run(shell: list[str], script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shell, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_urls_carry_any_password_and_the_raw_secrets_are_gone(shell):
    done = run(shell, Prologue(database=True, redis=True).script("env"), parts())
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    db = urlsplit(env["DATABASE_URL"])
    assert (db.scheme, db.hostname, db.port, db.path, db.query) == ("postgres", "db.internal", 5432, "/greenlight",
                                                                    "sslmode=require")
    assert unquote(db.username) == "green light" and unquote(db.password) == NASTY
    redis = urlsplit(env["REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port, redis.path) == ("rediss", "cache.internal", 6379, "/0")
    assert unquote(redis.password) == "t@k/en:%"
    assert "DB_PASSWORD" not in env and "REDIS_PASSWORD" not in env


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_greenlights_own_url_parsing_still_finds_host_and_port(shell):
    # Greenlight's bin/config.env strips the scheme, everything up to the last '@' and the path, then
    # splits on ':'; an encoded password must not confuse it.
    parse = ('TXADDR=${DATABASE_URL#*://}; TXADDR=${TXADDR##*@}; TXADDR=${TXADDR%%/*}; echo "$TXADDR"')
    done = run(shell, Prologue(database=True).script(f"sh -c '{parse}'"), parts())
    assert done.stdout.strip() == "db.internal:5432", done.stderr


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_a_missing_part_stops_before_the_application_starts(shell):
    done = run(shell, Prologue(database=True, redis=True).script("echo STARTED"), parts(DB_PASSWORD=None))
    assert done.returncode != 0 and "STARTED" not in done.stdout


def test_an_empty_start_command_is_refused():
    with pytest.raises(ValueError, match="start command is empty"):
        Prologue(database=True).script("  ")


FAKE_BUNDLE = """#!/bin/sh
# bundle exec rails runner '<ruby>' | bundle exec rake admin:create[name,email,password]
state="$FAKE_STATE"
case "$3" in
  runner)
    [ -f "$state.down" ] && { echo "PG::ConnectionBad" >&2; exit 1; }
    [ -f "$state" ] && exit 3 || exit 4 ;;
  admin:create*)
    echo "$3" > "$state.args"
    echo "User account was created successfully!"
    echo "  Password: $(printf '%s' "$3" | sed 's/.*,//; s/]$//')"
    [ -f "$state.refuse" ] || touch "$state"
    exit 0 ;;
esac
echo "unexpected: $*" >&2; exit 99
"""


@pytest.fixture
def greenlight(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bundle = bin_dir / "bundle"
    bundle.write_text(FAKE_BUNDLE)
    bundle.chmod(bundle.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "admin-exists"
    password = "Ab3#x%Y.z=Q^r~T_u-v:w@k+P"  # the kind of value the generator makes
    env = parts(PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_STATE=str(state), ADMIN_NAME="Administrator",
                ADMIN_EMAIL="ops@example.com", ADMIN_PASSWORD=password)
    (script,) = admin_command()
    return script, env, state, password


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_admin_is_created_once_and_its_password_never_printed(shell, greenlight):
    script, env, state, password = greenlight
    first = run(shell, script, env)
    assert first.returncode == 0, first.stderr
    assert "created the administrator ops@example.com" in first.stdout
    assert password not in first.stdout + first.stderr
    assert Path(f"{state}.args").read_text().strip() == f"admin:create[Administrator,ops@example.com,{password}]"
    Path(f"{state}.args").unlink()
    again = run(shell, script, env)
    assert again.returncode == 0 and "already has an account, nothing to do" in again.stdout
    assert not Path(f"{state}.args").exists(), "rake must not run when the account exists"


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_admin_task_fails_when_the_account_did_not_appear(shell, greenlight):
    script, env, state, password = greenlight
    Path(f"{state}.refuse").touch()  # rake "succeeds" but creates nothing (e.g. a validation message)
    done = run(shell, script, env)
    assert done.returncode == 1 and "did not create ops@example.com" in done.stderr
    assert password not in done.stdout + done.stderr


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_admin_task_fails_when_the_database_is_unreachable(shell, greenlight):
    script, env, state, _ = greenlight
    Path(f"{state}.down").touch()
    done = run(shell, script, env)
    assert done.returncode == 1 and "cannot query the users table (exit 1)" in done.stderr
    assert not Path(f"{state}.args").exists()


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
@pytest.mark.parametrize(("prepare_exit", "starts"), [(0, True), (1, False)])
def test_the_api_starts_only_after_the_database_is_prepared(shell, tmp_path, prepare_exit, starts):
    bundle = tmp_path / "bundle"
    bundle.write_text(f'#!/bin/sh\necho "bundle $*"\nexit {prepare_exit}\n')
    bundle.chmod(bundle.stat().st_mode | stat.S_IEXEC)
    script = Prologue(database=True, redis=True).then(f"{SCALELITE_API_PREPARE}\nexec echo STARTED")
    done = run(shell, script, parts(PATH=f"{tmp_path}:{os.environ['PATH']}"))
    assert "bundle exec rake db:prepare" in done.stdout
    assert ("STARTED" in done.stdout) == starts and (done.returncode == 0) == starts
