"""A small Amazon States Language interpreter for the synthesized state machines (JSONPath dialect).

It runs exactly the states the lifecycle definitions use - Task, Choice, Wait, Pass, Succeed, Fail - with
InputPath / Parameters (incl. `.$` and `$$.` context paths) / ResultPath / OutputPath, Retry (ErrorEquals,
IntervalSeconds, MaxAttempts, BackoffRate, MaxDelaySeconds) and Catch, following the ASL specification.
A Task invokes the Lambda handler in-process; a handler exception becomes the error named after its class
(as Lambda reports `errorType`). Waits and retry intervals advance a fake clock instead of sleeping.
Unsupported constructs raise, so the definition cannot silently drift away from what this interpreter checks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

SUPPORTED_STATE_KEYS = {
    "Task": {
        "Type",
        "Resource",
        "Parameters",
        "InputPath",
        "ResultPath",
        "OutputPath",
        "Retry",
        "Catch",
        "Next",
        "End",
        "Comment",
        "TimeoutSeconds",
        "ResultSelector",
    },
    "Choice": {"Type", "Choices", "Default", "InputPath", "OutputPath", "Comment"},
    "Wait": {"Type", "Seconds", "Next", "End", "InputPath", "OutputPath", "Comment"},
    "Pass": {"Type", "Result", "Parameters", "InputPath", "ResultPath", "OutputPath", "Next", "End", "Comment"},
    "Succeed": {"Type", "InputPath", "OutputPath", "Comment"},
    "Fail": {"Type", "Error", "Cause", "Comment"},
}


class AslError(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = (start or datetime.now(timezone.utc)).replace(microsecond=0)
        self.listeners: list[Callable[[datetime, datetime], None]] = []

    def iso(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.now.microsecond // 1000:03d}Z"

    def advance(self, seconds: float) -> None:
        """Move time forward in steps of at most 60 s so time-based fakes (the poller) tick realistically."""
        remaining = float(seconds)
        while remaining > 0:
            step = min(60.0, remaining)
            before = self.now
            self.now = self.now + timedelta(seconds=step)
            remaining -= step
            for listener in self.listeners:
                listener(before, self.now)


# --- JSONPath (the reference-path subset ASL allows) -----------------------------------------------
def _split(path: str) -> list[str]:
    if path == "$":
        return []
    if not path.startswith("$."):
        raise AslError("States.Runtime", f"unsupported path {path!r}")
    return path[2:].split(".")


def get_path(data: Any, path: str, context: dict[str, Any]) -> Any:
    if path.startswith("$$"):
        return get_path(context, path[1:], context)
    node = data
    for key in _split(path):
        if not isinstance(node, dict) or key not in node:
            raise AslError("States.Runtime", f"path {path!r} does not exist in the state input")
        node = node[key]
    return node


def set_path(data: Any, path: str | None, value: Any) -> Any:
    if path is None:  # "ResultPath": null keeps the input
        return data
    keys = _split(path)
    if not keys:
        return value
    root = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = root
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return root


def apply_parameters(template: Any, data: Any, context: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        result = {}
        for key, value in template.items():
            if key.endswith(".$"):
                result[key[:-2]] = get_path(data, value, context)
            else:
                result[key] = apply_parameters(value, data, context)
        return result
    if isinstance(template, list):
        return [apply_parameters(item, data, context) for item in template]
    return template


# --- Choice rules ----------------------------------------------------------------------------------
def evaluate(rule: dict[str, Any], data: Any, context: dict[str, Any]) -> bool:
    if "And" in rule:
        return all(evaluate(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(evaluate(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not evaluate(rule["Not"], data, context)
    variable = rule["Variable"]
    try:
        value = get_path(data, variable, context)
        present = True
    except AslError:
        value, present = None, False
    for op, expected in rule.items():
        if op in ("Variable", "Next"):
            continue
        if op == "IsPresent":
            return present == expected
        if not present:
            raise AslError("States.Runtime", f"Choice variable {variable} is missing")
        if op == "StringEquals":
            return isinstance(value, str) and value == expected
        if op == "BooleanEquals":
            return isinstance(value, bool) and value == expected
        if op == "IsNull":
            return (value is None) == expected
        numeric = {
            "NumericEquals": lambda a, b: a == b,
            "NumericLessThan": lambda a, b: a < b,
            "NumericGreaterThan": lambda a, b: a > b,
            "NumericLessThanEquals": lambda a, b: a <= b,
            "NumericGreaterThanEquals": lambda a, b: a >= b,
        }
        if op in numeric:
            return isinstance(value, int | float) and not isinstance(value, bool) and numeric[op](value, expected)
        raise AslError("States.Runtime", f"Choice operator {op} is not supported by the test interpreter")
    raise AslError("States.Runtime", f"Choice rule without operator: {rule}")


def _matches(error: str, names: list[str]) -> bool:
    return error in names or ("States.ALL" in names and error != "States.Runtime")


@dataclass
class Execution:
    name: str
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[tuple[str, str, str]] = field(default_factory=list)  # (time, state, event)

    def visited(self) -> list[str]:
        return [state for _time, state, event in self.history if event == "entered"]


class Interpreter:
    def __init__(
        self,
        definition: dict[str, Any],
        invoke: Callable[[str, Any], Any],
        clock: FakeClock,
        *,
        max_transitions: int = 20000,
    ) -> None:
        self.definition = definition
        self.invoke = invoke
        self.clock = clock
        self.max_transitions = max_transitions
        for name, state in definition["States"].items():
            unknown = set(state) - SUPPORTED_STATE_KEYS.get(state["Type"], set())
            if state["Type"] not in SUPPORTED_STATE_KEYS or unknown:
                raise AslError("States.Runtime", f"state {name} uses {state['Type']} {sorted(unknown)}: unsupported")

    def run(self, execution_input: Any, name: str) -> Execution:
        execution = Execution(name)
        started = self.clock.iso()
        started_dt = self.clock.now
        timeout = self.definition.get("TimeoutSeconds")
        data = execution_input
        state_name = self.definition["StartAt"]
        for _ in range(self.max_transitions):
            if timeout is not None and (self.clock.now - started_dt).total_seconds() > timeout:
                execution.status, execution.error = "TIMED_OUT", "States.Timeout"
                return execution
            state = self.definition["States"][state_name]
            execution.history.append((self.clock.iso(), state_name, "entered"))
            context = {
                "Execution": {"Name": name, "StartTime": started, "Input": execution_input},
                "State": {"Name": state_name, "EnteredTime": self.clock.iso(), "RetryCount": 0},
            }
            try:
                data, next_state = self._step(state_name, state, data, context)
            except _Caught as caught:
                execution.history.append((self.clock.iso(), state_name, f"caught {caught.caught_error}"))
                data, state_name = caught.data, caught.next_state
                continue
            except AslError as exc:
                execution.status, execution.error, execution.cause = "FAILED", exc.error, exc.cause
                return execution
            if next_state is None:
                if state["Type"] == "Fail":
                    execution.status, execution.error, execution.cause = (
                        "FAILED",
                        state.get("Error"),
                        state.get("Cause"),
                    )
                else:
                    execution.status, execution.output = "SUCCEEDED", data
                return execution
            state_name = next_state
        raise AssertionError(f"execution {name} did not finish within {self.max_transitions} transitions")

    def _step(self, name: str, state: dict[str, Any], data: Any, context: dict[str, Any]) -> tuple[Any, str | None]:
        kind = state["Type"]
        if kind == "Fail":
            return data, None
        effective = get_path(data, state.get("InputPath", "$"), context)
        if kind == "Succeed":
            return get_path(effective, state.get("OutputPath", "$"), context), None
        if kind == "Choice":
            for rule in state["Choices"]:
                if evaluate(rule, effective, context):
                    return get_path(effective, state.get("OutputPath", "$"), context), rule["Next"]
            if "Default" not in state:
                raise AslError("States.NoChoiceMatched", f"no choice matched in {name}")
            return get_path(effective, state.get("OutputPath", "$"), context), state["Default"]
        if kind == "Wait":
            self.clock.advance(float(state["Seconds"]))
            return get_path(effective, state.get("OutputPath", "$"), context), state.get("Next")
        if kind == "Pass":
            result = state.get(
                "Result",
                apply_parameters(state["Parameters"], effective, context) if "Parameters" in state else effective,
            )
            out = set_path(data, state.get("ResultPath", "$"), result)
            return get_path(out, state.get("OutputPath", "$"), context), state.get("Next")
        # Task
        payload = apply_parameters(state["Parameters"], effective, context) if "Parameters" in state else effective
        attempts: dict[int, int] = {}
        while True:
            try:
                result = self.invoke(state["Resource"], copy.deepcopy(payload))
                break
            except Exception as exc:  # the handler failed: Lambda reports errorType = class name
                error, cause = type(exc).__name__, str(exc)
                for index, retrier in enumerate(state.get("Retry", [])):
                    if _matches(error, retrier["ErrorEquals"]):
                        done = attempts.get(index, 0)
                        if done < retrier.get("MaxAttempts", 3):
                            delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** done
                            delay = min(delay, retrier.get("MaxDelaySeconds", delay))
                            attempts[index] = done + 1
                            self.clock.advance(delay)
                            context["State"]["RetryCount"] += 1
                            break
                        raise self._catch(state, data, error, cause) from exc
                else:
                    raise self._catch(state, data, error, cause) from exc
        if "ResultSelector" in state:
            result = apply_parameters(state["ResultSelector"], result, context)
        out = set_path(data, state.get("ResultPath", "$"), result)
        return get_path(out, state.get("OutputPath", "$"), context), state.get("Next")

    def _catch(self, state: dict[str, Any], data: Any, error: str, cause: str) -> Exception:
        for catcher in state.get("Catch", []):
            if _matches(error, catcher["ErrorEquals"]):
                output = set_path(data, catcher.get("ResultPath", "$"), {"Error": error, "Cause": cause})
                return _Caught(output, catcher["Next"], error)
        return AslError(error, cause)


class _Caught(AslError):
    """A Catch transition (raised out of _step, handled by run)."""

    def __init__(self, data: Any, next_state: str, caught_error: str) -> None:
        super().__init__("Caught", next_state)
        self.data = data
        self.next_state = next_state
        self.caught_error = caught_error
