"""Mutation testing (cosmic-ray, pinned in requirements-dev.txt) of the code whose bugs cost the most: the relay's
policies and TURN core, and the lifecycle handlers. Not part of CI: a full run takes hours on 2 cores.

    .venv/bin/python scripts/mutation.py                      # every target
    .venv/bin/python scripts/mutation.py relay-policy         # one target
    .venv/bin/python scripts/mutation.py --module relay/policy/quotas.py --tests tests/relay/unit/test_relay_policies.py

cosmic-ray mutates each module in place, one mutant at a time, runs the target's tests and restores the file;
this script writes one config and session per target under --out, prints the score (killed / all that ran) and
every surviving mutant (module, line, operator) for review, and checks that the work tree is unchanged after.
A module path that no longer exists (the relay is being regrouped) is an error naming it, not a silent skip.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass(frozen=True)
class Target:
    modules: tuple[str, ...]
    tests: str  # pytest arguments: the fast tests that exercise these modules


TARGETS = {
    "relay-policy": Target(
        ("relay/policy/auth.py", "relay/policy/nonce.py", "relay/policy/peers.py", "relay/policy/quotas.py"),
        "tests/relay/unit/test_relay_policies.py tests/relay/unit/test_turn_core.py",
    ),
    "relay-core": Target(
        ("relay/turn/handler.py", "relay/turn/allocation.py", "relay/turn/table.py"),
        "tests/relay/unit/test_turn_core.py tests/relay/unit/test_packet_path.py tests/relay/unit/test_fuzz_core.py",
    ),
    "lifecycle": Target(
        ("lambdas/bbb_drain/index.py", "lambdas/turn_drain/index.py", "lambdas/lifecycle_launch/index.py"),
        "tests/lambdas/test_lc_bbb_drain.py tests/lambdas/test_lc_turn_drain.py tests/lambdas/test_lc_launch.py",
    ),
}


def config(target: Target, timeout: float) -> str:
    modules = ", ".join(json.dumps(m) for m in target.modules)
    command = f"{PYTHON} -m pytest -x -q -p no:cacheprovider {target.tests}"
    return (
        "[cosmic-ray]\n"
        f"module-path = [{modules}]\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )


def cosmic_ray(*args: str) -> subprocess.CompletedProcess[str]:
    with subprocess.Popen([str(Path(PYTHON).parent / "cosmic-ray"), *args], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:  # fmt: skip
        try:
            out, err = process.communicate()
        finally:  # interrupted: stop cosmic-ray before the work tree is restored
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def restore(modules: list[str]) -> None:
    """cosmic-ray edits modules in place: an interrupted run leaves a mutant behind, so put HEAD's back (the
    modules had no local change when the run started)."""
    if subprocess.run(["git", "diff", "--quiet", "--", *modules], cwd=ROOT, check=False).returncode != 0:
        subprocess.run(["git", "checkout", "--", *modules], cwd=ROOT, check=True)
        print(f"restored {' '.join(modules)} from HEAD (a mutant was left in place)", file=sys.stderr)


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(name: str, target: Target, out: Path, timeout: float) -> tuple[int, int, list[str]]:
    """(killed, ran, survivors) of one target."""
    missing = [m for m in target.modules if not (ROOT / m).is_file()]
    if missing:
        raise SystemExit(f"{name}: {', '.join(missing)} not found (moved? pass --module with the new path)")
    out.mkdir(parents=True, exist_ok=True)
    cfg, session = out / f"{name}.toml", out / f"{name}.sqlite"
    cfg.write_text(config(target, timeout))
    session.unlink(missing_ok=True)
    for step in (("init", str(cfg), str(session)), ("baseline", str(cfg)), ("exec", str(cfg), str(session))):
        done = cosmic_ray(*step)
        if done.returncode != 0:
            raise SystemExit(f"{name}: cosmic-ray {step[0]} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    killed = ran = 0
    survivors = []
    for line in cosmic_ray("dump", str(session)).stdout.splitlines():
        item, result = json.loads(line)
        if not result or result.get("worker_outcome") != "normal":
            continue  # not run, or the mutant could not even be applied
        ran += 1
        if result["test_outcome"] == "killed":
            killed += 1
        else:
            [mutation] = item["mutations"]
            survivors.append(f"{mutation['module_path']}:{mutation['start_pos'][0]} {mutation['operator_name']} "
                             f"#{mutation['occurrence']}")  # fmt: skip
    return killed, ran, survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--module", action="append", help="mutate these modules instead (with --tests)")
    parser.add_argument("--tests", help="pytest arguments for --module")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant's test run")
    parser.add_argument("--out", type=Path, default=ROOT / ".mutation", help="configs, sessions and the report")
    args = parser.parse_args()
    if args.module:
        if not args.tests:
            parser.error("--module needs --tests")
        chosen = {"custom": Target(tuple(args.module), args.tests)}
    else:
        unknown = [name for name in args.targets if name not in TARGETS]
        if unknown:
            parser.error(f"unknown target(s) {', '.join(unknown)}; use {', '.join(TARGETS)}")
        chosen = {name: TARGETS[name] for name in (args.targets or TARGETS)}
    modules = [m for target in chosen.values() for m in target.modules]
    if subprocess.run(["git", "diff", "--quiet", "--", *modules], cwd=ROOT, check=False).returncode != 0:
        raise SystemExit("commit or stash your changes to the mutated modules first (cosmic-ray edits them in place)")
    signal.signal(signal.SIGTERM, _terminated)  # `timeout`, CI or kill: restore the modules on the way out
    report = []
    try:
        for name, target in chosen.items():
            killed, ran, survivors = run(name, target, args.out, args.timeout)
            score = f"{100.0 * killed / ran:.1f} %" if ran else "n/a"
            report.append(f"{name}: {killed}/{ran} mutants killed ({score}); {len(survivors)} survived")
            report.extend(f"  survived: {s}" for s in survivors)
            print(report[-1 - len(survivors)], flush=True)
    finally:
        restore(modules)
    (args.out / "report.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
