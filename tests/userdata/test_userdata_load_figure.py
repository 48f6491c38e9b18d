"""bbb/load_figure.py on BBB 3.0 getMeetings answers, and the meetings publisher sending it (under bash, shims
for curl and aws only)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
DEFAULTS = {"participant": 1.0, "voice": 1.0, "listener": 0.5, "webcam": 2.0, "webcamViewer": 0.1,
            "screenShareViewer": 0.05}  # cdk.json's documented defaults (settings.model.LoadWeights)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bbb_load_figure", USERDATA / "bbb" / "load_figure.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load_figure = _load()


def attendee(n: int, *, presenter: bool = False, video: bool = False, voice: bool = False,
             listening: bool = False, video_tag: bool = True) -> str:
    """An <attendee> as BBB 3.0's getMeetings writes it."""
    role = "MODERATOR" if presenter else "VIEWER"
    has_video = f"<hasVideo>{str(video).lower()}</hasVideo>" if video_tag else ""
    return (f"<attendee><userID>w_{n:04d}</userID><fullName>Student {n}</fullName><role>{role}</role>"
            f"<isPresenter>{str(presenter).lower()}</isPresenter><isListeningOnly>{str(listening).lower()}"
            f"</isListeningOnly><hasJoinedVoice>{str(voice).lower()}</hasJoinedVoice>{has_video}"
            "<clientType>HTML5</clientType></attendee>")


def meeting(name: str, *, participants: int, voice: int, listeners: int, video: int | None, attendees: list[str],
            breakout: bool = False) -> str:
    video_count = "" if video is None else f"<videoCount>{video}</videoCount>"
    return (f"<meeting><meetingName>{name}</meetingName><meetingID>{name.lower().replace(' ', '-')}</meetingID>"
            "<internalMeetingID>183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1733468400000</internalMeetingID>"
            "<createTime>1733468400000</createTime><voiceBridge>70066</voiceBridge><running>true</running>"
            f"<hasUserJoined>{str(participants > 0).lower()}</hasUserJoined><recording>false</recording>"
            f"<participantCount>{participants}</participantCount><listenerCount>{listeners}</listenerCount>"
            f"<voiceParticipantCount>{voice}</voiceParticipantCount>{video_count}"
            f"<moderatorCount>1</moderatorCount><attendees>{''.join(attendees)}</attendees>"
            f"<metadata><bbb-origin>greenlight</bbb-origin></metadata><isBreakout>{str(breakout).lower()}</isBreakout>"
            "</meeting>")


# A school hour on one server: a class of 25 (3 webcams, 14 microphones, 10 listen-only), one of its breakout
# rooms, a meeting just created that nobody joined yet, and a meeting from a BBB that reports no videoCount.
CLASS = meeting("Physics 9b", participants=25, voice=14, listeners=10, video=3, attendees=[
    attendee(0, presenter=True, video=True, voice=True),
    *[attendee(n, video=True, voice=True) for n in (1, 2)],
    *[attendee(n, voice=True) for n in range(3, 14)],
    *[attendee(n, listening=True) for n in range(14, 24)],
    attendee(24),
])
BREAKOUT = meeting("Physics 9b Room 1", participants=4, voice=4, listeners=0, video=0, breakout=True,
                   attendees=[attendee(100, presenter=True, voice=True),
                              *[attendee(n, voice=True) for n in (101, 102, 103)]])
EMPTY = meeting("Staff", participants=0, voice=0, listeners=0, video=0, attendees=[])
NO_VIDEO_COUNT = meeting("Tutoring", participants=3, voice=3, listeners=0, video=None, attendees=[
    attendee(200, video=True, voice=True), attendee(201, video=True, voice=True), attendee(202, voice=True)])
SCHOOL_HOUR = ("<response><returncode>SUCCESS</returncode><meetings>"
               f"{CLASS}{BREAKOUT}{EMPTY}{NO_VIDEO_COUNT}</meetings></response>")


def test_a_school_hour_in_load_units() -> None:
    # class:     25 + 14 + 0.5x10 + 2x3 + 0.1x3x24 + 0.05x24 = 58.4
    # breakout:   4 +  4 + 0      + 0   + 0        + 0.05x3  =  8.15
    # created:    0
    # tutoring:   3 +  3 + 0      + 2x2 + 0.1x2x2  + 0 (no presenter) = 10.4  (webcams from hasVideo)
    assert load_figure.meetings_and_load(SCHOOL_HOUR, DEFAULTS) == (4, 76.95)


def test_each_weight_counts_what_it_names() -> None:
    only = dict.fromkeys(DEFAULTS, 0.0)
    assert load_figure.meetings_and_load(SCHOOL_HOUR, {**only, "webcamViewer": 1.0})[1] == 3 * 24 + 2 * 2
    assert load_figure.meetings_and_load(SCHOOL_HOUR, {**only, "listener": 1.0})[1] == 10
    assert load_figure.meetings_and_load(SCHOOL_HOUR, {**only, "voice": 1.0})[1] == 14 + 4 + 3
    assert load_figure.meetings_and_load(SCHOOL_HOUR, {**only, "screenShareViewer": 1.0})[1] == 24 + 3


def test_no_meetings_is_zero_load() -> None:
    xml = ("<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey>"
           "<message>no meetings were found on this server</message></response>")
    assert load_figure.meetings_and_load(xml, DEFAULTS) == (0, 0.0)


@pytest.mark.parametrize(("text", "message"), [
    ("nope", "getMeetings did not return XML"),
    ("<response><returncode>FAILED</returncode><message>Checksums do not match</message></response>",
     "getMeetings failed: Checksums do not match"),
    (SCHOOL_HOUR.replace("<listenerCount>10</listenerCount>", "<listenerCount>ten</listenerCount>"),
     "listenerCount 'ten' is not a number"),
])
def test_bad_get_meetings_answers(text: str, message: str) -> None:
    with pytest.raises(load_figure.SourceError, match=message):
        load_figure.meetings_and_load(text, DEFAULTS)


@pytest.mark.parametrize(("weights", "message"), [
    ("{", "LOAD_WEIGHTS is not JSON"),
    (json.dumps({**DEFAULTS, "webcam": -1}), "LOAD_WEIGHTS.webcam -1 must be a number of at least 0"),
    (json.dumps({**DEFAULTS, "voice": True}), "LOAD_WEIGHTS.voice True must be a number"),
    (json.dumps({k: v for k, v in DEFAULTS.items() if k != "listener"}), "exactly participant, voice, listener"),
])
def test_bad_weights(weights: str, message: str) -> None:
    with pytest.raises(load_figure.SourceError, match=message):
        load_figure.parse_weights(weights)


def test_command_line_prints_load_per_group_and_per_instance() -> None:
    script = USERDATA / "bbb" / "load_figure.py"
    result = subprocess.run(
        [sys.executable, str(script), "--asg", "fleet", "--instance-id", "i-0abc", "--weights", json.dumps(DEFAULTS)],
        input=SCHOOL_HOUR, capture_output=True, text=True, check=True)
    group = [{"Name": "AutoScalingGroupName", "Value": "fleet"}]
    instance = [*group, {"Name": "InstanceId", "Value": "i-0abc"}]
    assert json.loads(result.stdout) == [
        {"MetricName": "Load", "Unit": "Count", "Value": 76.95, "Dimensions": group},
        {"MetricName": "Load", "Unit": "Count", "Value": 76.95, "Dimensions": instance},
    ]  # Meetings per instance is metric_data.py's (the first put-metric-data of the publisher)
    bad = subprocess.run(
        [sys.executable, str(script), "--asg", "fleet", "--instance-id", "i-0abc", "--weights", "[]"],
        input=SCHOOL_HOUR, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout == "" and "load_figure: LOAD_WEIGHTS must be an object" in bad.stderr


API_SECRET = "Ap1Bq2Cr3Ds4Et5Fu6Gv7Hw8Ix9Jy0Kz1La2Mb3N"
FQDN = "bbb-0abc123def4567890.bbb.example.com"


def _publisher(shell, weights: str | None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    conf = shell.root / "conf"
    params = "METRICS_NAMESPACE=BBBOnAWS/bbb\nROLE=single\n" + (
        f"LOAD_WEIGHTS='{weights}'\n" if weights is not None else "")
    (conf / "params.env").write_text(params)
    (conf / "runtime.env").write_text(f"FQDN={FQDN}\nASG_NAME=bbb-BbbFleet-1A2B3C\nINSTANCE_ID=i-0abc\n")
    props = shell.root / "bigbluebutton.properties"
    props.write_text(f"securitySalt={API_SECRET}\n")
    checksum = hashlib.sha256(f"getMeetings{API_SECRET}".encode()).hexdigest()
    (shell.root / "get-meetings.xml").write_text(SCHOOL_HOUR)
    shell.shim("curl", f"""
        [[ ${{@: -1}} == "https://{FQDN}/bigbluebutton/api/getMeetings?checksum={checksum}" ]] || exit 22
        cat {shell.root}/get-meetings.xml
    """)
    shell.shim("aws")
    return shell.run(f"bash {USERDATA}/bbb/publish_meetings.sh",
                     env={"BBB_SERVLET_PROPERTIES": str(props), "BBB_ETC": str(shell.root),
                          "DATA_MOUNT": str(shell.root / "bbb-data"), "LETSENCRYPT_LIVE": str(shell.root / "le")})


def test_the_publisher_sends_the_load_figure_after_meetings_and_participants(shell) -> None:  # type: ignore[no-untyped-def]
    result = _publisher(shell, json.dumps(DEFAULTS))
    assert result.returncode == 0, result.stderr
    calls = shell.calls("aws")
    assert [json.loads(c[c.index("--metric-data") + 1])[0]["MetricName"] for c in calls] == ["Meetings", "Load"]
    load_call = calls[1]
    assert load_call[:5] == ["aws", "cloudwatch", "put-metric-data", "--namespace", "BBBOnAWS/bbb"]
    data = json.loads(load_call[load_call.index("--metric-data") + 1])
    assert [(d["MetricName"], d["Value"], len(d["Dimensions"])) for d in data] == [
        ("Load", 76.95, 1), ("Load", 76.95, 2)]
    assert data[1]["Dimensions"][1] == {"Name": "InstanceId", "Value": "i-0abc"}


def test_the_publisher_fails_loudly_without_weights(shell) -> None:  # type: ignore[no-untyped-def]
    result = _publisher(shell, None)
    assert result.returncode != 0
    assert "LOAD_WEIGHTS missing from params.env" in result.stderr
    assert len(shell.calls("aws")) == 1  # Meetings and Participants still went out first
