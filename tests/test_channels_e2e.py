"""Email and chat channels and silences, through real processes: a sidecar (60x clock) in front of a real upstream,
a real SMTP server (aiosmtpd, STARTTLS, a login) and a real HTTP chat receiver. A firing alert arrives once by
email and once by chat; a restart in between repeats neither (its resolution arrives once each, from the second
process); a silenced alert changes state, is shown as silenced and sends nothing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests

from helpers import WebhookReceiver, free_port, running, upstream_command, wait_until
from smtp_server import SmtpServer, make_certificates

pytestmark = pytest.mark.slow

RULES = """
[[rule]]
name = "AnyTraffic"
metric = "request_rate"
comparison = "above"
threshold = 0
for = 0
severity = "critical"
runbook = "requests are coming in"

[[rule]]
name = "QuietTraffic"
metric = "request_rate"
comparison = "above"
threshold = 0
for = 0
runbook = "the same, but silenced"
"""


def _sidecar(upstream: str, port: int, admin_port: int, tmp_path: Path, smtp: SmtpServer, ca_file: Path) -> list[str]:
    return [sys.executable, "-m", "yolowatch", "sidecar", "--upstream", upstream, "--port", str(port),
            "--admin-port", str(admin_port), "--db", str(tmp_path / "c.db"), "--deployment", "edge",
            "--alert-rules", str(tmp_path / "rules.toml"), "--smtp-url", smtp.url, "--smtp-ca-file", str(ca_file),
            "--alert-email-from", "yolowatch@example.com", "--alert-email-to", "oncall@example.com"]  # fmt: skip


def _subjects(smtp: SmtpServer) -> list[str]:
    return [str(received.message["Subject"]) for received in smtp.received]


def _chat_lines(chat: WebhookReceiver) -> list[str]:
    return [body["text"] for body in chat.bodies]


def test_email_and_chat_once_across_a_restart_and_silenced_alerts_send_nothing(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(RULES)
    (tmp_path / "tls").mkdir()
    certificates = make_certificates(tmp_path / "tls")
    upstream_port, port, admin_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    admin = f"http://127.0.0.1:{admin_port}"
    with (
        running(upstream_command(upstream_port), f"{upstream}/health"),
        SmtpServer("starttls", certificates, login=("alerts", "smtp-pw-1")) as smtp,
        WebhookReceiver() as chat,
    ):
        env = {
            "YOLOWATCH_TIME_SCALE": "60",
            "YOLOWATCH_TIME_ANCHOR": str(time.time()),  # both processes on one clock
            "YOLOWATCH_SMTP_PASSWORD": "smtp-pw-1",
            "YOLOWATCH_ALERT_CHAT": chat.url,
        }
        command = _sidecar(upstream, port, admin_port, tmp_path, smtp, certificates.ca_file)
        with running(command, f"{admin}/health", env=env):
            silence = requests.post(
                f"{admin}/api/silences",
                json={"matchers": [{"name": "alertname", "value": "QuietTraffic"}], "duration": "1d",
                      "createdBy": "ana", "comment": "known: a load test"},
                timeout=10,
            )  # fmt: skip
            assert silence.status_code == 201, silence.text
            silence_id = silence.json()["id"]
            # Traffic until the firing email has come (a second of traffic is a server minute).
            deadline = time.time() + 40
            while not smtp.received:
                assert time.time() < deadline, "AnyTraffic never fired"
                assert requests.post(f"http://127.0.0.1:{port}/predict", files={"file": ("a.jpg", b"x")}, timeout=10)
                time.sleep(0.05)
            wait_until(lambda: chat.bodies, "the chat post of the firing alert")
        # Restarted: the firing notification is neither sent again; with no traffic the alert resolves, once.
        with running(command, f"{admin}/health", env=env):
            wait_until(lambda: len(smtp.received) >= 2, "the resolved email", timeout_s=40)
            wait_until(lambda: len(chat.bodies) >= 2, "the resolved chat post", timeout_s=20)
            time.sleep(3)  # a few more server minutes: nothing else may come
            alerts = requests.get(f"{admin}/api/alerts", params={"deployment": "edge"}, timeout=10).json()
    subjects = _subjects(smtp)
    assert len(subjects) == 2, subjects
    assert subjects[0].startswith("[FIRING] AnyTraffic on edge") and subjects[1].startswith("[RESOLVED] AnyTraffic")
    assert all(r.over_tls and r.login == "alerts" and r.recipients == ["oncall@example.com"] for r in smtp.received)
    lines = _chat_lines(chat)
    assert len(lines) == 2 and "AnyTraffic" in lines[0] and "AnyTraffic" in lines[1], lines
    assert not any("QuietTraffic" in text for text in [*subjects, *lines])
    quiet = [entry for entry in alerts["history"] if entry["rule"] == "QuietTraffic"]
    assert {entry["status"] for entry in quiet} == {"firing", "resolved"}, quiet  # it changed state...
    assert all(entry["silencedBy"] == [silence_id] for entry in quiet)  # ...and was shown as silenced
