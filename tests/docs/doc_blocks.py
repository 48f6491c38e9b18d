"""Fenced code blocks of the operator documentation, by the name of their `<!-- docs-test: NAME -->` marker.

The marker sits on the line before the fence, so the reader sees only the command; the tests run exactly
that text (after substituting the example names and paths a test cannot use, such as 443 or /etc).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.conftest import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"
RELAY_README = ROOT / "relay" / "README.md"

_MARKED = re.compile(r"^ *<!-- docs-test: (?P<name>[\w.-]+) -->\n *```(?P<lang>\w*)\n(?P<body>.*?)^ *```", re.M | re.S)
_FENCED = re.compile(r"^ *```(?P<lang>\w*)\n(?P<body>.*?)^ *```", re.M | re.S)


def marked_blocks(path: Path) -> dict[str, str]:
    """name -> block text, indentation of a block inside a list item removed."""
    blocks: dict[str, str] = {}
    for match in _MARKED.finditer(path.read_text()):
        indent = len(match.group(0)) - len(match.group(0).lstrip(" "))
        body = "".join(
            line[indent:] if line[:indent].isspace() else line for line in match.group("body").splitlines(keepends=True)
        )
        assert match.group("name") not in blocks, f"{path}: two blocks named {match.group('name')}"
        blocks[match.group("name")] = body
    return blocks


def shell_commands(path: Path) -> list[str]:
    """Every command of every bash/sh block: comments dropped, continuation lines joined."""
    commands = []
    for match in _FENCED.finditer(path.read_text()):
        if match.group("lang") not in ("bash", "sh"):
            continue
        text = re.sub(r"\\\n\s*", " ", match.group("body"))
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def aws_invocations(path: Path) -> list[list[str]]:
    """Each `aws ...` call (also inside $(...), after `&&`, `|` or `;`) as its words, up to the end of the call."""
    calls = []
    for command in shell_commands(path):
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        for index, token in enumerate(tokens):
            if token == "aws" and (index == 0 or tokens[index - 1] in ("(", "$", "&&", "|", ";", "$(")):
                words = []
                for word in tokens[index:]:
                    if word in ("|", ";", "&&", ")", "||", "<", ">", "(") or word.startswith((")", "|")):
                        break
                    words.append(word)
                calls.append(words)
    return calls
