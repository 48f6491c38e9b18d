"""Mutation testing (cosmic-ray, pinned in requirements-dev.txt) of the code whose bugs cost the most: the relay's
policies and TURN core, and the lifecycle handlers. Not part of CI: a full run takes hours on 2 cores.

    .venv/bin/python scripts/mutation.py                      # every target
    .venv/bin/python scripts/mutation.py relay-policy         # one target
    .venv/bin/python scripts/mutation.py relay-core --resume  # go on with the mutants an interrupted run left
    .venv/bin/python scripts/mutation.py relay-policy --retest-survivors  # after new tests: only the survivors
    .venv/bin/python scripts/mutation.py --module relay/policy/quotas.py --tests tests/relay/unit/test_relay_policies.py

Each module has its own cosmic-ray session (config and sqlite under --out) run against the fastest tests that
exercise that module, with a per-mutant timeout (a mutant that hangs its tests counts as killed). cosmic-ray
mutates the module in place, one mutant at a time, runs the tests and restores the file.

Affordable on a shared 2-core machine:
- the whole run is reniced (+10), so it only takes the CPU that nobody else wants;
- mutants that are equivalent by construction are marked skipped before anything runs: a mutation inside an
  annotation of a module with `from __future__ import annotations` changes a string that nothing evaluates
  (none of these modules resolves its own annotations: no get_type_hints, no pydantic);
- the lifecycle tests read one template synthesized before the run (LC_TEMPLATE, tests/lambdas/conftest.py)
  instead of synthesizing the CDK app for every mutant: the template comes from stacks/cdk_constructs, which
  import nothing from lambdas/, so a mutant cannot change it.

Run one module at a time per test area: a session's tests must not import a module another session is mutating
(the policy tests import every policy module; the drain tests run the launch handler and common/transitions.py).

The report gives killed / run per module, the mutants skipped and those not run (an interrupted run), and every
survivor as `module:line operator #occurrence` plus its diff line. A module path that no longer exists is an
error naming it, not a silent skip; the work tree is checked unchanged (restored from HEAD) on the way out.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NICE = 10


@dataclass(frozen=True)
class Target:
    module: str
    tests: str  # pytest arguments: the fast tests that exercise this module, quickest and sharpest first
    timeout: float  # seconds per mutant: about 5x the unmutated run on a loaded 2-core machine


POLICY_TESTS = "tests/relay/unit/test_relay_policies.py"
CORE_TESTS = " ".join(
    f"tests/relay/unit/{name}.py" for name in ("test_turn_core", "test_turn_core_reports", "test_packet_path")
)
TARGETS: dict[str, tuple[Target, ...]] = {
    "relay-policy": (
        Target("relay/policy/auth.py", f"{POLICY_TESTS} tests/relay/unit/test_turn_core.py", 30),
        Target("relay/policy/nonce.py", f"{POLICY_TESTS} tests/relay/unit/test_turn_core.py", 30),
        Target("relay/policy/peers.py", POLICY_TESTS, 30),
        Target("relay/policy/quotas.py", f"{POLICY_TESTS} tests/relay/unit/test_turn_core.py", 30),
        Target(
            "relay/policy/shared_quotas.py",
            "tests/relay/workers/test_shared_quota_layout.py tests/relay/workers/test_workers_parts.py",
            30,
        ),
    ),
    "lifecycle": (
        Target("lambdas/bbb_termination/index.py", "tests/lambdas/test_bbb_termination.py", 60),
        Target(
            "lambdas/common/transitions.py",
            "tests/lambdas/test_lc_transitions.py tests/lambdas/test_lc_warm_pool.py",
            90,
        ),
        Target("lambdas/turn_drain/index.py", "tests/lambdas/test_lc_turn_drain.py", 90),
        Target("lambdas/bbb_drain/index.py", "tests/lambdas/test_lc_bbb_drain.py", 150),
        # The warm-pool test runs the prewarm and wake paths of the launch handler (11 s).
        Target(
            "lambdas/lifecycle_launch/index.py",
            "tests/lambdas/test_lc_launch.py tests/lambdas/test_lc_warm_pool.py",
            120,
        ),
    ),
    "relay-core": (
        Target("relay/turn/grants.py", CORE_TESTS, 30),
        # The table's heap compaction and expiry only run at the sizes the memory-hardening test builds.
        Target("relay/turn/table.py", f"{CORE_TESTS} tests/relay/io/test_hardening_memory.py", 120),
        Target("relay/turn/allocation.py", CORE_TESTS, 30),
        Target("relay/turn/handler.py", CORE_TESTS, 30),
    ),
}


# Plugins none of these tests use: hypothesis and syrupy alone cost 1-4 s of imports per mutant on a loaded machine.
PYTEST = "-x -q -p no:cacheprovider -p no:hypothesispytest -p no:syrupy -p no:xdist -p no:typeguard"


def config(target: Target) -> str:
    command = f"{PYTHON} -m pytest {PYTEST} {target.tests}"
    return (
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(target.module)}\n"
        f"timeout = {target.timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )


def cosmic_ray(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    with subprocess.Popen([str(Path(PYTHON).parent / "cosmic-ray"), *args], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env) as process:  # fmt: skip
        try:
            out, err = process.communicate()
        finally:  # interrupted: stop cosmic-ray before the work tree is restored
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


Span = tuple[tuple[int, int], tuple[int, int]]
ANNOTATION = "inside an annotation (never evaluated)"
OUTSIDE_FOCUS = "outside --focus"


def annotation_spans(source: str) -> list[Span]:
    """(start, end) as (line, column) of every annotation, or none if annotations are evaluated at run time
    (no `from __future__ import annotations`): only then is a mutation inside one equivalent by construction.
    Columns are characters, as cosmic-ray's (parso's) positions; ast counts UTF-8 bytes."""
    tree = ast.parse(source)
    future = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    if not any(alias.name == "annotations" for node in future for alias in node.names):
        return []
    lines = source.splitlines()

    def column(line: int, byte: int) -> int:
        return len(lines[line - 1].encode()[:byte].decode())

    spans = []
    for node in ast.walk(tree):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)  # the value, if any, is evaluated: not in the span
        for annotation in annotations:
            if annotation is None or annotation.end_lineno is None or annotation.end_col_offset is None:
                continue
            start = (annotation.lineno, column(annotation.lineno, annotation.col_offset))
            spans.append((start, (annotation.end_lineno, column(annotation.end_lineno, annotation.end_col_offset))))
    return spans


def function_spans(source: str, names: set[str]) -> list[Span]:
    """(start, end) of the named functions (--focus), in cosmic-ray's positions."""
    lines = source.splitlines()
    spans = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            end = (node.end_lineno or node.lineno, len(lines[(node.end_lineno or node.lineno) - 1]))
            spans.append(((node.lineno, 0), end))
    return spans


def mark_skipped(session: Path, spans_of: Callable[[str], list[Span]], note: str, *, inside: bool) -> int:
    """Mark every pending mutant that lies wholly inside (or, inside=False, not wholly inside) the spans as
    skipped, with `note` as its output (a filter step like cosmic-ray's own cr-filter-pragma); returns how many."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans: dict[Path, list[Span]] = {}
    skipped = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in db.pending_work_items:
            within = bool(item.mutations)
            for mutation in item.mutations:
                path = ROOT / mutation.module_path
                if path not in spans:
                    spans[path] = spans_of(path.read_text())
                start, end = tuple(mutation.start_pos), tuple(mutation.end_pos)
                within &= any(lo <= start and end <= hi for lo, hi in spans[path])
            if within == inside:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=note))
                skipped += 1
    return skipped


def unskip(session: Path, note: str) -> None:
    """Make the mutants skipped with `note` pending again (a run without --focus takes them up)."""
    with sqlite3.connect(session) as connection:
        connection.execute("DELETE FROM work_results WHERE lower(worker_outcome) = 'skipped' AND output = ?", (note,))


def restore(modules: list[str]) -> None:
    """cosmic-ray edits modules in place: an interrupted run leaves a mutant behind, so put HEAD's back (the
    modules had no local change when the run started). Written from `git show`, not `git checkout`: that takes
    the index lock, which a session stopping at the same moment may hold."""
    for module in modules:
        head = subprocess.run(["git", "show", f"HEAD:{module}"], cwd=ROOT, check=True, capture_output=True).stdout
        path = ROOT / module
        if path.read_bytes() != head:
            path.write_bytes(head)
            print(f"restored {module} from HEAD (a mutant was left in place)", file=sys.stderr)


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def session_of(target: Target, out: Path) -> Path:
    return out / (target.module.replace("/", ".").removesuffix(".py") + ".sqlite")


def blob(module: str) -> str:
    """The module's git blob id: a session's mutants are positions in exactly this text."""
    return subprocess.run(["git", "hash-object", module], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def retest_survivors(session: Path) -> int:
    """Forget the survivors' results, so `exec` runs them again against today's tests; returns how many."""
    from cosmic_ray.work_db import WorkDB, use_db

    with use_db(str(session), WorkDB.Mode.open) as db:
        survived = [job for job, result in db.results if result.test_outcome == "survived"]
    with sqlite3.connect(session) as connection:
        connection.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in survived])
    return len(survived)


def execute(target: Target, out: Path, resume: bool, retest: bool, focus: list[str], env: dict[str, str]) -> None:
    if not (ROOT / target.module).is_file():
        raise SystemExit(f"{target.module} not found (moved? pass --module with the new path)")
    session = session_of(target, out)
    cfg, stamp = session.with_suffix(".toml"), session.with_suffix(".blob")
    cfg.write_text(config(target))
    steps: list[tuple[str, ...]] = [("baseline", str(cfg)), ("exec", str(cfg), str(session))]
    if (resume or retest) and session.exists():
        if not stamp.exists() or stamp.read_text() != blob(target.module):
            raise SystemExit(f"{target.module} changed since its session was made: run it again without --resume")
        if retest:
            print(f"{target.module}: {retest_survivors(session)} survivors to run again", flush=True)
    else:
        session.unlink(missing_ok=True)
        done = cosmic_ray("init", str(cfg), str(session))
        if done.returncode != 0:
            raise SystemExit(f"{target.module}: cosmic-ray init failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        stamp.write_text(blob(target.module))
        skipped = mark_skipped(session, annotation_spans, ANNOTATION, inside=True)
        print(f"{target.module}: {skipped} mutants inside annotations skipped", flush=True)
    unskip(session, OUTSIDE_FOCUS)
    if focus:
        names = set(focus)
        left = mark_skipped(session, lambda text: function_spans(text, names), OUTSIDE_FOCUS, inside=False)
        print(f"{target.module}: {left} mutants outside {', '.join(sorted(names))} left for later", flush=True)
    for step in steps:
        done = cosmic_ray(*step, env=env)
        if done.returncode != 0:
            raise SystemExit(
                f"{target.module}: cosmic-ray {step[0]} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )


def summary(target: Target, out: Path) -> list[str]:
    """The module's line of the report, then one line per survivor (with the mutated source line)."""
    session = session_of(target, out)
    if not session.exists():
        return [f"{target.module}: not run"]
    killed = ran = skipped = pending = 0
    survivors = []
    for line in cosmic_ray("dump", str(session)).stdout.splitlines():
        item, result = json.loads(line)
        if not result:
            pending += 1
            continue
        if result.get("worker_outcome") == "skipped":
            if result.get("output") == ANNOTATION:
                skipped += 1
            else:
                pending += 1  # outside --focus: not run yet
            continue
        if result.get("worker_outcome") != "normal" or result.get("test_outcome") == "incompetent":
            pending += 1  # the mutant could not be applied or tested: counted as not run
            continue
        ran += 1
        if result["test_outcome"] == "killed":
            killed += 1
            continue
        [mutation] = item["mutations"]
        diff = (result.get("diff") or "").splitlines()
        added = " / ".join(d[1:].strip() for d in diff if d.startswith("+") and not d.startswith("+++"))
        where = f"{mutation['module_path']}:{mutation['start_pos'][0]}"
        survivors.append(f"  survived: {where} {mutation['operator_name']} #{mutation['occurrence']}: {added}")
    score = f"{100.0 * killed / ran:.1f} %" if ran else "n/a"
    head = (f"{target.module}: {killed}/{ran} killed ({score}), {len(survivors)} survived, {skipped} skipped "
            f"(annotations), {pending} not run")  # fmt: skip
    return [head, *survivors]


def synthesized_template(out: Path) -> Path:
    """The lifecycle tests' template, synthesized once from HEAD for every mutant (see the module docstring)."""
    path = out / "lifecycle-template.json"
    code = (
        "import json, sys, tempfile, pathlib\n"
        "sys.path[:0] = ['.', 'tests/lambdas/support']\n"
        "import lc_test_stack\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        "    app, _ = lc_test_stack.build(pathlib.Path(tmp), nag=False)\n"
        "    app.synth()\n"
        "    template = pathlib.Path(tmp) / f'{lc_test_stack.STACK_NAME}.template.json'\n"
        f"    pathlib.Path({str(path)!r}).write_text(template.read_text())\n"
    )
    subprocess.run([PYTHON, "-c", code], cwd=ROOT, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(TARGETS)}, or modules of theirs (default: all)")
    parser.add_argument("--module", action="append", help="mutate these modules instead (with --tests)")
    parser.add_argument("--tests", help="pytest arguments for --module")
    parser.add_argument("--timeout", type=float, help="seconds per mutant's test run (default: the target's)")
    parser.add_argument("--resume", action="store_true", help="keep existing sessions, run only their pending mutants")
    parser.add_argument("--retest-survivors", action="store_true", help="resume, running the survivors again first")
    parser.add_argument("--focus", action="append", help="run only the mutants inside these functions (for now)")
    parser.add_argument("--report", action="store_true", help="only print the report of the existing sessions")
    parser.add_argument("--out", type=Path, default=ROOT / ".mutation", help="configs, sessions and the report")
    args = parser.parse_args()
    if args.module:
        if not args.tests:
            parser.error("--module needs --tests")
        chosen = [Target(m, args.tests, args.timeout or 60.0) for m in args.module]
    else:
        by_module = {t.module: t for targets in TARGETS.values() for t in targets}
        unknown = [name for name in args.targets if name not in TARGETS and name not in by_module]
        if unknown:
            parser.error(f"unknown target(s) {', '.join(unknown)}; use {', '.join(TARGETS)} or one of their modules")
        chosen = [t for name in (args.targets or TARGETS) for t in TARGETS.get(name, (by_module.get(name),)) if t]
        if args.timeout:
            chosen = [Target(t.module, t.tests, args.timeout) for t in chosen]
    modules = [t.module for t in chosen]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        if subprocess.run(["git", "diff", "--quiet", "--", *modules], cwd=ROOT, check=False).returncode != 0:
            raise SystemExit(
                "commit or stash your changes to the mutated modules first (cosmic-ray edits them in place)"
            )
        os.nice(NICE)  # inherited by cosmic-ray and every test run
        env = dict(os.environ)
        if any(t.module.startswith("lambdas/") for t in chosen):
            env["LC_TEMPLATE"] = str(synthesized_template(args.out))
        signal.signal(signal.SIGTERM, _terminated)  # `timeout`, CI or kill: restore the modules on the way out
        try:
            for target in chosen:
                execute(target, args.out, args.resume, args.retest_survivors, args.focus or [], env)
                print(summary(target, args.out)[0], flush=True)
        except SystemExit as stop:
            print(f"stopped: {stop}", file=sys.stderr)
        finally:
            restore(modules)
    report = [line for target in chosen for line in summary(target, args.out)]
    (args.out / "report.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
