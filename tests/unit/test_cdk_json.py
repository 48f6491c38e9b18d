"""cdk_json.read_cdk_json: each malformed cdk.json is refused with its line, column, the source line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdk_json import CdkJsonError, main, read_cdk_json
from tests.conftest import ROOT

GOOD = '{\n  "app": "x",\n  "context": {\n    "deployment": {\n      "environment": {"name": "bbb"}\n    }\n  }\n}\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cdk.json"
    path.write_text(text)
    return path


def test_the_repository_cdk_json_reads_as_the_json_module_reads_it() -> None:
    assert read_cdk_json(ROOT / "cdk.json") == json.loads((ROOT / "cdk.json").read_text())


@pytest.mark.parametrize(
    ("broken", "line", "column", "problem"),
    [
        # The comma after the last entry, at the comma itself (json reports the bracket after it).
        (GOOD.replace('"bbb"}', '"bbb",}'), 5, 36, "trailing comma before a closing bracket"),
        (GOOD.replace('"app": "x"', '"app": ["x",]'), 2, 14, "trailing comma before a closing bracket"),
        # A value's closing quote missing: the string runs into the end of its line.
        (GOOD.replace('"bbb"', '"bbb'), 5, 36, 'add the missing " at the end of the value'),
        (GOOD.replace('"app"', '"app'), 2, 10, "missing ':' after the key (or a missing quote around the key)"),
        (GOOD.replace('"app": "x",', '"app": "x"'), 3, 3, "missing comma between two entries"),
        (GOOD.replace('"bbb"', "True"), 5, 31, "true/false/null are lower case"),
        (GOOD.replace('"app"', "app"), 2, 3, "a key must be a string in double quotes"),
        (GOOD + "}\n", 9, 1, "text after the closing '}' of the document"),
        # The second "deployment" would silently replace the first: refused at the second one.
        (
            GOOD.replace('    "deployment": {', '    "deployment": {},\n    "deployment": {'),
            5,
            5,
            "duplicate key 'deployment' in the same object",
        ),
    ],
    ids=[
        "trailing-comma-object",
        "trailing-comma-array",
        "missing-value-quote",
        "missing-key-quote",
        "missing-comma",
        "python-literal",
        "unquoted-key",
        "extra-data",
        "duplicate-key",
    ],
)
def test_malformed_json_names_line_column_and_fix(
    tmp_path: Path, broken: str, line: int, column: int, problem: str
) -> None:
    path = write(tmp_path, broken)
    with pytest.raises(CdkJsonError) as caught:
        read_cdk_json(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}:{column}: ")
    assert problem in message
    # The offending source line, then a caret under the column.
    source, caret = message.splitlines()[1:3]
    assert source.strip() == broken.splitlines()[line - 1].strip()
    assert caret.index("^") - 4 == column - 1


def test_same_key_in_different_objects_is_fine(tmp_path: Path) -> None:
    text = '{"context": {"a": {"image": 1}, "b": {"image": 2}, "image": 3}}'
    assert read_cdk_json(write(tmp_path, text))["context"]["image"] == 3


def test_duplicate_after_a_nested_object_with_the_same_key_points_at_the_outer_one(tmp_path: Path) -> None:
    text = '{"context": {"a": 1, "b": {"a": 2}, "a": 3}}'
    with pytest.raises(CdkJsonError, match=r":1:37: duplicate key 'a'"):
        read_cdk_json(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "must be one JSON object {...}, not a list"),
        ('{"app": "x"}', 'no "context" object at the top level'),
        ('{"context": []}', 'no "context" object at the top level'),
    ],
)
def test_wrong_document_shape(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(CdkJsonError, match=problem.replace("{", r"\{").replace(".", r"\.")):
        read_cdk_json(write(tmp_path, text))


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(CdkJsonError, match="cannot be read"):
        read_cdk_json(tmp_path / "absent.json")
    (tmp_path / "latin1.json").write_bytes(b'{"context": {"name": "caf\xe9"}}')
    with pytest.raises(CdkJsonError, match="not UTF-8 text"):
        read_cdk_json(tmp_path / "latin1.json")


def test_main_exit_codes_and_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(write(tmp_path, GOOD))]) == 0
    assert main([str(write(tmp_path, GOOD.replace('"bbb"}', '"bbb",}')))]) == 1
    assert "cdk.json error — fix it before any cdk command:" in capsys.readouterr().err
