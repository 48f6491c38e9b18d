"""Reads cdk.json strictly: a syntax error or a duplicate key is reported with its line, column and the fix.

One reader for every entry point: `app.py` (through `stacks.deployment`) and the scripts, which run
`python3 cdk_json.py` before any `cdk` command because the CDK CLI parses cdk.json itself first and reports
only a character offset. Standard library only, so it runs before the virtualenv exists; a top-level module
(not in the settings model) because it reads the file, while the model validates the values in it.

Duplicate keys are refused although JSON parsers accept them (the last one silently wins): in a hand-edited
cdk.json a second `"deployment"` or `"instanceType"` is a mistake that would discard the first.
"""

from __future__ import annotations

import json
import sys
from json.decoder import WHITESPACE, JSONObject, scanstring  # type: ignore[attr-defined]
from json.scanner import py_make_scanner  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

FILE = Path(__file__).resolve().parent / "cdk.json"


class CdkJsonError(ValueError):
    """cdk.json cannot be used: the message names the file, line, column, the problem and the fix."""


def _hint(text: str, pos: int, msg: str) -> tuple[int, str]:
    """Turn the json module's message into what an operator should change (and the position to point at)."""
    before = text[:pos].rstrip()
    if before.endswith(",") and text[pos : pos + 1] in "}]" and pos < len(text):
        return len(before) - 1, "trailing comma before a closing bracket: JSON allows none, remove the comma"
    if msg.startswith("Unterminated string") or "Invalid control character" in msg:
        return pos, 'string without its closing double quote: add the missing " at the end of the value'
    if msg.startswith("Expecting property name"):
        return pos, 'a key must be a string in double quotes ("key"): quote it, and no comma after the last entry'
    if msg.startswith("Expecting ',' delimiter"):
        return pos, "missing comma between two entries (or a missing quote before this point)"
    if msg.startswith("Expecting ':' delimiter"):
        return pos, "missing ':' after the key (or a missing quote around the key)"
    if msg.startswith("Expecting value"):
        return pos, "no valid value here: strings need double quotes, and true/false/null are lower case"
    if msg.startswith("Extra data"):
        return pos, "text after the closing '}' of the document: remove it (or a '}' closes too early)"
    return pos, msg


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _located(path: Path, text: str, pos: int, problem: str) -> CdkJsonError:
    line, col = _line_col(text, pos)
    lines = text.splitlines()
    source = lines[line - 1] if line <= len(lines) else ""
    return CdkJsonError(f"{path}:{line}:{col}: {problem}\n    {source}\n    {' ' * (col - 1)}^")


class _DuplicateKey(Exception):
    def __init__(self, key: str, pos: int) -> None:
        super().__init__(key)
        self.key, self.pos = key, pos


def _key_positions(text: str, start: int, value_end: Any) -> list[tuple[str, int]]:
    """(key, offset) for each key of the already-parsed object whose '{' is at `start`, values skipped."""
    keys: list[tuple[str, int]] = []
    idx = WHITESPACE.match(text, start + 1).end()
    while text[idx] == '"':
        key, after = scanstring(text, idx + 1)
        keys.append((key, idx))
        idx = WHITESPACE.match(text, after).end() + 1  # past ':'
        _, idx = value_end(text, WHITESPACE.match(text, idx).end())
        idx = WHITESPACE.match(text, idx).end()
        if text[idx] != ",":
            break
        idx = WHITESPACE.match(text, idx + 1).end()
    return keys


class _StrictDecoder(json.JSONDecoder):
    """json's own pure-Python scanner with an object parser that refuses a repeated key at its position (the C
    scanner cannot be hooked, and json offers no duplicate check of its own)."""

    def __init__(self) -> None:
        super().__init__()
        plain = json.JSONDecoder().scan_once

        def parse_object(
            s_and_end: tuple[str, int], strict: bool, scan_once: Any, hook: Any, pairs_hook: Any, memo: Any = None
        ) -> tuple[dict[str, Any], int]:
            pairs, end = JSONObject(s_and_end, strict, scan_once, None, list, memo)
            if len({key for key, _ in pairs}) != len(pairs):
                seen: set[str] = set()
                for key, pos in _key_positions(s_and_end[0], s_and_end[1] - 1, plain):
                    if key in seen:
                        raise _DuplicateKey(key, pos)
                    seen.add(key)
            return dict(pairs), end

        self.parse_object = parse_object
        self.scan_once = py_make_scanner(self)


def read_cdk_json(path: Path = FILE) -> dict[str, Any]:
    """cdk.json as a dict with a `context` object, or CdkJsonError with the line, column and fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CdkJsonError(f"{path}: cannot be read ({error.strerror}); run from a checkout of this project") from None
    except UnicodeDecodeError as error:
        raise CdkJsonError(f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8") from None
    try:
        document = _StrictDecoder().decode(text)
    except json.JSONDecodeError as error:
        raise _located(path, text, *_hint(text, error.pos, error.msg)) from None
    except _DuplicateKey as dup:
        raise _located(
            path,
            text,
            dup.pos,
            f"duplicate key '{dup.key}' in the same object: JSON keeps only the "
            "last one, so merge the two entries into one",
        ) from None
    if not isinstance(document, dict):
        raise CdkJsonError(f"{path}: the document must be one JSON object {{...}}, not a {type(document).__name__}")
    if not isinstance(document.get("context"), dict):
        raise CdkJsonError(
            f'{path}: no "context" object at the top level: the deployment settings live in '
            '"context" -> "deployment" (see README.md, Parameters)'
        )
    return document


def main(argv: list[str]) -> int:
    """`python3 cdk_json.py [FILE]`: exit 0 if the file is usable, else print the problem and exit 1."""
    path = Path(argv[0]) if argv else FILE
    try:
        read_cdk_json(path)
    except CdkJsonError as error:
        print(f"cdk.json error — fix it before any cdk command:\n{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
