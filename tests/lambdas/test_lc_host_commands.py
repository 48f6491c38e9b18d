"""The recordings check that runs on BBB hosts through SSM, executed for real with sh on fake trees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from common.host_commands import RecordingCounts, recordings_script

MEETING = "6e35e3b2778883f5db637d7a5dba0a427f692e91-1711111111111"


def run(root: Path, *, transfer: bool = True) -> RecordingCounts:
    done = subprocess.run(
        ["sh", "-c", recordings_script(transfer=transfer)],
        capture_output=True,
        text=True,
        env={"BBB_ON_AWS_ROOT": str(root), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return RecordingCounts.parse(done.stdout)


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / "var/bigbluebutton/recording/status" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_nothing_on_a_fresh_host(tmp_path: Path) -> None:
    assert run(tmp_path) == RecordingCounts(0, 0, 0, 0)


def test_a_recording_moves_through_the_pipeline(tmp_path: Path) -> None:
    touch(tmp_path, f"ended/{MEETING}.done")
    assert run(tmp_path).pending == 1
    (tmp_path / f"var/bigbluebutton/recording/status/ended/{MEETING}.done").unlink()
    touch(tmp_path, f"archived/{MEETING}.done")
    assert run(tmp_path) == RecordingCounts(ended=0, processing=1, transfer=0, failed=0)
    touch(tmp_path, f"sanity/{MEETING}.done", f"processed/{MEETING}-presentation.done")
    assert run(tmp_path).processing == 1  # processed, not yet published
    touch(tmp_path, f"published/{MEETING}-presentation.done")
    assert run(tmp_path) == RecordingCounts(0, 0, 1, 0)  # published, not yet handed to Scalelite
    assert run(tmp_path, transfer=False).pending == 0  # without Scalelite, published is done
    touch(tmp_path, f"published/{MEETING}-sender.done")
    assert run(tmp_path).pending == 0


def test_failed_recordings_do_not_block(tmp_path: Path) -> None:
    touch(tmp_path, f"archived/{MEETING}.done", f"sanity/{MEETING}.done", f"processed/{MEETING}-presentation.fail")
    assert run(tmp_path) == RecordingCounts(0, 0, 0, 1)


def test_tarballs_not_yet_in_the_spool_count(tmp_path: Path) -> None:
    work = tmp_path / "var/bigbluebutton/recording/scalelite"
    work.mkdir(parents=True)
    (work / f"{MEETING}.tar").write_text("")
    assert run(tmp_path).transfer == 1
    assert run(tmp_path, transfer=False).transfer == 0


def test_unexpected_output_is_refused() -> None:
    with pytest.raises(ValueError, match="no JSON line"):
        RecordingCounts.parse("bash: syntax error")
