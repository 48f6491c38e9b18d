"""The hosts' metric publisher (userdata/common/metric_data.py) against a real relay's /metrics and against the
drain's own recordings count (lambdas/common/host_commands.py), which must agree with it."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from relay.ops.metrics import RelayCollector, build_registry, render_metrics
from relay.stun import MessageClass

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "relay"))
from relay_testkit import Peer, RunningRelay, TurnClient, error_of, loopback_config  # noqa: E402


def load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("metric_data_under_test", ROOT / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


metric_data = load("userdata/common/metric_data.py")


def scrape(relay: RunningRelay) -> str:
    """The text the relay's admin endpoint serves for this relay's live counters."""
    collector = RelayCollector(lambda: relay.call(relay.stats.snapshot), draining=lambda: relay.draining)
    return render_metrics(build_registry(collector)).decode()


def values(data: list[dict]) -> dict[str, float]:
    """Group-level values by name (the per-instance copies checked separately)."""
    return {d["MetricName"]: d["Value"] for d in data if len(d["Dimensions"]) == 1}


# --- relay --------------------------------------------------------------------------------------------------


def test_every_relay_figure_is_read_from_a_real_relay_and_counters_become_increases() -> None:
    with RunningRelay(loopback_config()) as relay, Peer() as peer:
        first, state = metric_data.relay_metric_data(scrape(relay), "turn-asg", "i-0turn", previous=None)
        # First run: gauges only (a counter's first total says nothing about this minute).
        assert set(values(first)) == {"Allocations", "TcpConnections", "TlsConnections", "Draining"}
        assert set(state["counters"]) == {n for n, spec in metric_data.RELAY_METRICS.items() if spec[3] == "counter"}
        assert state["start"] is not None  # the relay's process start time, to detect restarts

        with relay.client() as client:
            assert client.allocate().message_class == MessageClass.SUCCESS
            client.create_permission(peer.address)
            client.send_indication(peer.address, b"x" * 100)
            assert peer.recv()[0] == b"x" * 100
            assert error_of(client.create_permission(("10.0.0.1", 9))) == 403  # not an allowed peer
            username, _password = client.session.username, client.session.password
            with TurnClient(relay.address("udp"), username, "wrong password") as intruder:
                assert error_of(intruder.allocate()) == 401
            second, _ = metric_data.relay_metric_data(scrape(relay), "turn-asg", "i-0turn", previous=state)
    got = values(second)
    assert set(got) == set(metric_data.RELAY_METRICS)
    assert got["Allocations"] == 1
    assert got["AllocationsCreated"] == 1
    assert got["PacketsClientToPeer"] == 1 and got["BytesClientToPeer"] == 100
    assert got["PacketsPeerToClient"] == 0
    assert got["DeniedPeers"] == 1
    # Each client's first request carries no nonce (1 + 1); the intruder's two retries fail integrity (2).
    assert got["AuthFailures"] == 4
    assert got["QuotaRejections"] == got["BandwidthDrops"] == got["MalformedPackets"] == got["ServerErrors"] == 0
    per_instance = [d for d in second if len(d["Dimensions"]) == 2]
    assert [(d["MetricName"], d["Dimensions"][1]) for d in per_instance] == [
        ("Allocations", {"Name": "InstanceId", "Value": "i-0turn"})
    ]
    units = {d["MetricName"]: d["Unit"] for d in second}
    assert units["BytesPeerToClient"] == "Bytes" and units["AuthFailures"] == "Count"


def test_a_relay_restart_counts_its_new_totals_whole() -> None:
    text = "turn_allocations_created_total 4\nprocess_start_time_seconds 2000\n"
    full = full_exposition(text)
    previous = {"start": 1000.0, "counters": {"AllocationsCreated": 2.0}}
    data, state = metric_data.relay_metric_data(full, "asg", "i-1", previous=previous)
    assert values(data)["AllocationsCreated"] == 4  # restarted: 4 new, not 4 - 2
    again, _ = metric_data.relay_metric_data(
        full.replace("created_total 4", "created_total 9"), "asg", "i-1", previous=state
    )
    assert values(again)["AllocationsCreated"] == 5


def full_exposition(extra: str) -> str:
    """Every family the relay serves at zero, then `extra` (which wins over the zero lines it repeats)."""
    base = render_metrics(build_registry(RelayCollector(dict, draining=lambda: False), process_metrics=False))
    names = {line.split()[0] for line in extra.splitlines()}
    kept = [line for line in base.decode().splitlines() if line.split("{")[0].split(" ")[0] not in names]
    return "\n".join(kept) + "\n" + extra


def test_a_missing_relay_family_is_an_error_naming_it() -> None:
    text = full_exposition("").replace("turn_denied_peers_total 0.0\n", "")
    with pytest.raises(metric_data.SourceError, match="'turn_denied_peers_total' not found"):
        metric_data.relay_values(text)


def test_relay_command_line_writes_the_next_state_beside_the_current_one(tmp_path: Path) -> None:
    script = ROOT / "userdata" / "common" / "metric_data.py"
    state = tmp_path / "relay-counters.json"
    state.write_text("not json")  # damaged: treated as a first run, never a crash
    result = subprocess.run(
        [sys.executable, str(script), "relay", "--asg", "a", "--instance-id", "i-1", "--state", str(state)],
        input=full_exposition(""),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert state.read_text() == "not json"  # the caller moves .next into place after CloudWatch took the data
    # Every counter's total (all zero in this exposition) and no start time (it serves no process metrics).
    counters = {name: 0.0 for name, spec in metric_data.RELAY_METRICS.items() if spec[3] == "counter"}
    assert json.loads((tmp_path / "relay-counters.json.next").read_text()) == {"start": None, "counters": counters}


# --- BBB recordings and spool -------------------------------------------------------------------------------


def drain_script() -> str:
    """RECORDINGS_SCRIPT from the drain handler's module, read without importing the Lambda package."""
    tree = ast.parse((ROOT / "lambdas" / "common" / "host_commands.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RECORDINGS_SCRIPT":
            value = node.value.func.value if isinstance(node.value, ast.Call) else node.value  # .strip()
            return ast.literal_eval(value)
    raise AssertionError("RECORDINGS_SCRIPT not found in lambdas/common/host_commands.py")


TREES = {
    "empty": [],
    "ended only": ["status/ended/a.done"],
    "processing": ["status/archived/a.done"],
    "sanity, not published": ["status/archived/a.done", "status/sanity/a.done"],
    "published, not sent": ["status/archived/a.done", "status/sanity/a.done", "status/published/a-presentation.done"],
    "sent": [
        "status/archived/a.done",
        "status/sanity/a.done",
        "status/published/a-presentation.done",
        "status/published/a-sender.done",
    ],
    "failed": ["status/archived/a.done", "status/processed/a-presentation.fail"],
    "failed sender": [
        "status/archived/a.done",
        "status/sanity/a.done",
        "status/published/a-presentation.done",
        "status/published/a-sender.fail",
    ],
    "tarballs": ["scalelite/a.tar", "scalelite/b.tar", "scalelite/notes.txt"],
    "mixed": [
        "status/ended/z.done",
        "status/archived/a.done",
        "status/archived/b.done",
        "status/sanity/b.done",
        "status/published/b-video.done",
        "status/archived/c.done",
        "status/sanity/c.fail",
        "scalelite/d.tar",
    ],
}


@pytest.mark.parametrize("transfer", [True, False])
@pytest.mark.parametrize("tree", sorted(TREES))
def test_recordings_waiting_agrees_with_the_drain_count(tmp_path: Path, tree: str, transfer: bool) -> None:
    recording = tmp_path / "var" / "bigbluebutton" / "recording"
    for relative in TREES[tree]:
        (recording / relative).parent.mkdir(parents=True, exist_ok=True)
        (recording / relative).touch()
    script = drain_script().replace("__TRANSFER__", "1" if transfer else "0")
    result = subprocess.run(
        ["sh", "-c", script],
        env={"BBB_ON_AWS_ROOT": str(tmp_path), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    drain = json.loads(result.stdout)
    ours = metric_data.recording_counts(recording, transfer=transfer)
    assert ours == {
        "RecordingsWaiting": drain["ended"] + drain["processing"] + drain["transfer"],
        "RecordingsFailed": drain["failed"],
    }


def test_spool_age_is_the_oldest_file_and_a_missing_spool_only_loses_that_figure(tmp_path: Path, capsys) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    now = time.time()
    assert metric_data.spool_age(spool, now) == 0
    for name, age in (("new.tar", 30), ("old.tar", 900)):
        (spool / name).touch()
        os.utime(spool / name, (now - age, now - age))
    (spool / "dir").mkdir()
    assert metric_data.spool_age(spool, now) == 900
    xml = "<response><returncode>SUCCESS</returncode><meetings/></response>"
    data = metric_data.bbb_metric_data(xml, "asg", spool=tmp_path / "not-mounted", now=now)
    assert [d["MetricName"] for d in data] == ["Meetings", "Participants", "VideoStreams"]
    assert "RecordingSpoolAge not published: the recordings spool" in capsys.readouterr().err


def test_every_published_name_has_a_unit_and_group_dimension() -> None:
    """The tables the stacks' dashboard test reads: nothing published outside them."""
    xml = (
        "<response><returncode>SUCCESS</returncode><meetings><meeting><participantCount>3</participantCount>"
        "<videoCount>2</videoCount></meeting></meetings></response>"
    )
    data = metric_data.bbb_metric_data(xml, "asg", instance_id="i-1")
    assert {d["MetricName"] for d in data} <= set(metric_data.BBB_METRICS)
    assert values(data) == {"Meetings": 1, "Participants": 3, "VideoStreams": 2}
    assert {d["MetricName"] for d in data if len(d["Dimensions"]) == 2} == {"Meetings", "Participants"}


def test_certificate_days_left_from_openssls_end_date(capsys: pytest.CaptureFixture[str]) -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert metric_data.certificate_days_left("Jan 25 08:00:00 2027 GMT", now) == 10.0
    assert metric_data.certificate_days_left("Jan 14 20:00:00 2027 GMT", now) == -0.5  # expired: negative
    xml = "<response><returncode>SUCCESS</returncode><meetings/></response>"
    data = metric_data.bbb_metric_data(xml, "asg", certificate_not_after="yesterday", now=now)
    assert "CertificateDaysLeft" not in {d["MetricName"] for d in data}
    assert "CertificateDaysLeft not published: certificate end date 'yesterday'" in capsys.readouterr().err
