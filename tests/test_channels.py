"""The notification channels (sinks.py): email through a real SMTP server, chat webhooks posted to a real local
receiver, routing by severity and rule, and the outbox's promise through all of them: each notification arrives
once per channel, across a restart and while a channel is down."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import FakeClock, WebhookReceiver
from smtp_server import Certificates, SmtpServer, make_certificates
from yolowatch.alerts import Rule, Sink
from yolowatch.records import Notification
from yolowatch.signals import alert_evaluator
from yolowatch.sinks import (
    SmtpSettings,
    chat_body,
    chat_kind,
    chat_sink,
    email_sink,
    parse_smtp_url,
    routed,
    shown_chat_url,
    summary_line,
)
from yolowatch.store import Store

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-Pa55word"  # must never show in a log line or an error
DASHBOARD = "http://yolowatch.internal:8000"
SENDER = "yolowatch <alerts@example.com>"
GOLDEN = Notification("GoldenMismatch", "prod", "firing", 1_800_000_000, None, 0.5, "critical",
                      "compare the golden images' answers", id=1)  # fmt: skip
HOSTILE = Notification("PersonDrop", "prod", "firing", 1_800_000_000, None, 0.25, "warning",
                       "<script>alert(1)</script> @everyone <!channel> [click](http://evil.example) *now*",
                       id=2, class_name="<b>person</b>")  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def smtp(certificates: Certificates) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that requires STARTTLS, then a login."""
    with SmtpServer("starttls", certificates, login=("alerts", PASSWORD)) as server:
        yield server


def mail_to(server: SmtpServer, certificates: Certificates, password: str = PASSWORD, **options: Any) -> Sink:
    smtp = parse_smtp_url(server.url, password=password if server.user else "", ca_file=str(certificates.ca_file),
                          timeout_s=5)  # fmt: skip
    return email_sink(smtp, SENDER, ["oncall@example.com", "Ops <ops@example.com>"], DASHBOARD, **options)


def our_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured line but the test SMTP server's own (aiosmtpd's "mail.log")."""
    return "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith("mail"))


# Email.


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_an_email_arrives_over_tls_with_every_alert_and_no_password_anywhere(
    security: str, certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """STARTTLS on a submission port, or TLS from the start (smtps://): the message reaches every recipient with
    the alert's subject, a plain-text body and an escaped HTML one; the password is in no log line."""
    caplog.set_level(logging.DEBUG)
    with SmtpServer(security, certificates, login=("alerts", PASSWORD)) as server:
        await mail_to(server, certificates)([GOLDEN, HOSTILE])
    [mail] = server.received
    assert mail.over_tls and mail.login == "alerts"
    assert mail.sender == "alerts@example.com" and mail.recipients == ["oncall@example.com", "ops@example.com"]
    assert mail.message["Subject"] == "[FIRING:2] GoldenMismatch, PersonDrop on prod (critical)"
    assert mail.message["To"] == "oncall@example.com, Ops <ops@example.com>"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "[FIRING] GoldenMismatch on prod (critical)" in text
    for line in ("severity:  critical", "value:     0.5", "since:     2027-01-15 08:00 UTC",
                 "runbook:   compare the golden images' answers", "class:     <b>person</b>",
                 f"Dashboard: {DASHBOARD}/dashboard/"):  # fmt: skip
        assert line in text
    page = mail.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in page and "<b>person" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;person&lt;/b&gt;" in page
    assert f'href="{DASHBOARD}/dashboard/"' in page
    assert PASSWORD not in our_log_text(caplog)


async def test_a_refused_login_raises_and_names_the_server_but_never_the_password(
    smtp: SmtpServer, certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password: the sink raises (so the outbox keeps the notification), saying who refused whom."""
    caplog.set_level(logging.DEBUG)
    wrong = "not-" + PASSWORD
    with pytest.raises(RuntimeError, match=rf"127\.0\.0\.1:{smtp.port} refused the login of 'alerts' \(535\)") as err:
        await mail_to(smtp, certificates, password=wrong)([GOLDEN])
    assert smtp.received == [] and smtp.refused_logins >= 1  # smtplib tries PLAIN, then LOGIN
    shown = f"{err.value!r} {err.value.__cause__!r} {our_log_text(caplog)}"
    assert wrong not in shown and PASSWORD not in shown
    assert PASSWORD not in repr(parse_smtp_url(smtp.url, password=PASSWORD))


async def test_tls_is_verified_and_plain_smtp_only_when_asked(smtp: SmtpServer, certificates: Certificates) -> None:
    """A certificate the sink does not trust is refused; a server without STARTTLS is refused unless the URL says
    starttls=false (a local relay), and then the message goes in the clear."""
    untrusting = email_sink(parse_smtp_url(smtp.url, password=PASSWORD, timeout_s=5), SENDER, ["a@example.com"])
    with pytest.raises(RuntimeError, match=r"SSLCertVerificationError .*certificate verify failed"):
        await untrusting([GOLDEN])
    assert smtp.received == []

    with SmtpServer("none") as relay:
        insisting = parse_smtp_url(relay.url.removesuffix("?starttls=false"), timeout_s=5)
        with pytest.raises(RuntimeError, match=r"offers no STARTTLS: use smtps:// .* or starttls=false"):
            await email_sink(insisting, SENDER, ["a@example.com"])([GOLDEN])
        await email_sink(parse_smtp_url(relay.url, timeout_s=5), SENDER, ["a@example.com"])([GOLDEN])
    [mail] = relay.received
    assert not mail.over_tls and mail.message["Subject"] == "[FIRING] GoldenMismatch on prod (critical)"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://alerts%40example.com@smtp.example.com", SmtpSettings("smtp.example.com", 587, "starttls",
                                                                      "alerts@example.com", PASSWORD)),
        ("smtps://smtp.example.com", SmtpSettings("smtp.example.com", 465, "tls")),
        ("smtp://127.0.0.1:2525?starttls=false", SmtpSettings("127.0.0.1", 2525, "none")),
        ("SMTP://relay:25/?starttls=yes", SmtpSettings("relay", 25, "starttls")),
    ],
)  # fmt: skip
def test_smtp_urls_read_as_documented(url: str, expected: SmtpSettings) -> None:
    """smtp:// is STARTTLS on 587, smtps:// TLS on 465, starttls=false a plain relay; a user may be an address."""
    assert parse_smtp_url(url, password=PASSWORD if "alerts" in url else "") == expected


@pytest.mark.parametrize(
    ("url", "password", "message"),
    [
        (f"smtp://alerts:{PASSWORD}@smtp.example.com", "", "must not hold the password: put it in "
                                                           "YOLOWATCH_SMTP_PASSWORD or a file"),
        ("http://smtp.example.com", "", "must start with smtp:// \\(STARTTLS\\) or smtps:// \\(TLS\\)"),
        ("smtp://smtp.example.com:99999", "", "is not a URL such as smtp://"),
        ("smtp://", "", "names no host"),
        ("smtp://smtp.example.com/inbox", "", "takes no path"),
        ("smtp://smtp.example.com?tls=1", "", "takes one parameter, starttls; got 'tls'"),
        ("smtps://smtp.example.com?starttls=false", "", "smtps:// is TLS from the start"),
        ("smtp://smtp.example.com?starttls=maybe", "", "is not a boolean"),
        ("smtp://alerts@smtp.example.com", "", "the SMTP user 'alerts' needs a password: set YOLOWATCH_SMTP_PASSWORD"),
        ("smtp://smtp.example.com", PASSWORD, "needs a user in the URL"),
        ("smtp://alerts@smtp.example.com?starttls=false", PASSWORD, "never sent to smtp.example.com unencrypted"),
    ],
)  # fmt: skip
def test_smtp_urls_say_what_is_wrong_without_the_password(url: str, password: str, message: str) -> None:
    """Each mistake is one sentence saying what is allowed; none repeats a password."""
    with pytest.raises(ValueError, match=message) as err:
        parse_smtp_url(url, password=password)
    assert PASSWORD not in str(err.value)


def test_addresses_and_ca_files_are_checked_when_the_sink_is_made(tmp_path: Path) -> None:
    """A bad sender, no recipient, or a CA file that is not there: refused at start, not at the first alert."""
    smtp = SmtpSettings("smtp.example.com", 587)
    with pytest.raises(ValueError, match="the sender must be an email address"):
        email_sink(smtp, "yolowatch", ["a@example.com"])
    with pytest.raises(ValueError, match="at least one recipient"):
        email_sink(smtp, SENDER, [])
    with pytest.raises(ValueError, match=r"a recipient must be an email address .*'a@example.com\\nBcc: b@x'"):
        email_sink(smtp, SENDER, ["a@example.com\nBcc: b@x"])
    with pytest.raises(ValueError, match=r"the SMTP CA file .*missing\.pem cannot be used"):
        email_sink(SmtpSettings("smtp.example.com", ca_file=str(tmp_path / "missing.pem")), SENDER, ["a@example.com"])


# Chat.


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://hooks.slack.com/services/T0/B0/XXXX", "slack"),
        ("https://discord.com/api/webhooks/123/tok-en", "discord"),
        ("https://canary.discordapp.com/api/webhooks/123/tok-en", "discord"),
        ("https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/x/y", "teams"),
        ("https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=XXXX", "teams"),
        ("https://chat.example.com/hooks/xyz", "generic"),
        ("tgram://bottoken/ChatID", "apprise"),
    ],
)
def test_the_kind_comes_from_the_host_and_messages_hide_the_token(url: str, kind: str) -> None:
    """Slack, Discord and Teams are known by their hosts; any other http(s) URL is generic, any other scheme is
    apprise's; what messages show of the URL stops at the host."""
    assert chat_kind(url) == kind
    shown = shown_chat_url(url)
    assert not any(secret in shown for secret in ("XXXX", "tok-en", "abc", "xyz", "bottoken", "ChatID"))
    assert shown.endswith("…")


@pytest.mark.parametrize("kind", ["slack", "discord", "teams", "generic"])
async def test_each_platform_gets_its_own_body(kind: str, receiver: WebhookReceiver) -> None:
    """A real POST per batch, in the shape the platform takes, with the alert, its runbook and the dashboard."""
    resolved = Notification("HighErrorRate", "staging", "resolved", 1_800_000_000, 1_800_000_600, 0.0, "critical",
                            "read the ERROR logs", id=3)  # fmt: skip
    await chat_sink(receiver.url, DASHBOARD, kind=kind)([GOLDEN, resolved])
    [body] = receiver.bodies
    if kind == "teams":
        [attachment] = body["attachments"]
        assert body["type"] == "message" and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["actions"][0]["url"] == f"{DASHBOARD}/dashboard/"
        texts = [block["text"] for block in card["body"]]
        assert [block.get("color") for block in card["body"][1:]] == ["Attention", "Good"]
        text = "\n".join(texts)
    else:
        text = body["content" if kind == "discord" else "text"]
        assert set(body) == ({"content", "allowed_mentions"} if kind == "discord" else {"text"})
        assert f"{DASHBOARD}/dashboard/" in text
    assert "FIRING:1, RESOLVED:1" in text.replace("\\", "")
    firing = next(line for line in text.splitlines() if line.startswith("🚨"))
    ended = next(line for line in text.splitlines() if line.startswith("✅"))
    assert firing.startswith("🚨") and "FIRING" in firing and "value 0.5" in firing
    assert "since 2027-01-15 08:00 UTC" in firing and "compare the golden images" in firing
    assert ended.startswith("✅") and "RESOLVED" in ended and "resolved 2027-01-15 08:10 UTC" in ended


def test_what_a_platform_would_read_is_escaped() -> None:
    """Script tags, @everyone, <!channel>, Markdown links and emphasis from a runbook or a class name reach no
    platform as markup, mentions or links."""
    slack = chat_body("slack", [HOSTILE])["text"]
    assert "&lt;script&gt;" in slack and "&lt;!channel&gt;" in slack and "&lt;b&gt;person" in slack
    assert "<script>" not in slack and "<!channel>" not in slack

    discord = chat_body("discord", [HOSTILE])
    assert discord["allowed_mentions"] == {"parse": []}  # @everyone is text, never a ping
    assert r"\<script\>" in discord["content"] and r"\[click\](http" in discord["content"]
    assert r"\*now\*" in discord["content"]

    teams = "\n".join(b["text"] for b in chat_body("teams", [HOSTILE])["attachments"][0]["content"]["body"])
    assert r"\[click\](http" in teams and r"\*now\*" in teams  # Adaptive Cards render no HTML: <script> is text

    generic = chat_body("generic", [HOSTILE])["text"]
    assert "@everyone" not in generic and "@\u200beveryone" in generic and "<script>" not in generic


def test_a_discord_message_stays_under_2000_characters() -> None:
    """A long batch (after an outage) is cut at Discord's limit with a count of what was left out."""
    many = [Notification(f"Rule{i}", "prod", "firing", 1_800_000_000, None, 1.0, "warning", "x" * 150, id=i)
            for i in range(60)]  # fmt: skip
    content = chat_body("discord", many)["content"]
    assert len(content) <= 2000 and content.splitlines()[-1].startswith("… and ")
    kept = sum(line.startswith("⚠️") for line in content.splitlines())
    assert content.splitlines()[-1] == f"… and {60 - kept} more"


async def test_a_chat_receiver_that_fails_raises_without_showing_the_token(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500 or a refused connection raises (the outbox keeps the notification); neither the error nor any log
    line, httpx's own included, shows the webhook's token."""
    caplog.set_level(logging.DEBUG)
    url = receiver.url.replace("/hook", "/services/T0/B0/T0KEN-s3cret")
    receiver.failing = True
    with pytest.raises(RuntimeError, match=r"http://127\.0\.0\.1:\d+/… answered 500") as failed:
        await chat_sink(url, kind="slack")([GOLDEN])
    assert receiver.attempts == 1
    closed = "http://127.0.0.1:9/services/T0/B0/T0KEN-s3cret"  # the discard port: nobody listens
    with pytest.raises(RuntimeError, match=r"ConnectError posting to http://127\.0\.0\.1:9/…") as refused:
        await chat_sink(closed, kind="discord")([GOLDEN])
    assert "T0KEN" not in f"{failed.value} {refused.value} {caplog.text}"


async def test_a_proxy_named_in_the_environment_is_used_as_httpx_would(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY carries the post (here the receiver plays the proxy, for a host that does not exist), and
    NO_PROXY exempts a host (here nobody listens there: the post fails without touching the proxy)."""
    monkeypatch.setenv("HTTP_PROXY", receiver.url.removesuffix("/hook"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    await chat_sink("http://chat.invalid/hooks/T0KEN", kind="generic")([GOLDEN])
    assert [body["text"].splitlines()[0] for body in receiver.bodies] == ["[FIRING] GoldenMismatch on prod (critical)"]
    with pytest.raises(RuntimeError, match="ConnectError"):
        await chat_sink("http://127.0.0.1:9/hook", kind="generic")([GOLDEN])
    assert receiver.attempts == 1


def test_chat_urls_and_kinds_are_checked_when_the_sink_is_made() -> None:
    """An unknown kind, or an http URL with no host, is refused at start."""
    with pytest.raises(ValueError, match="kind must be one of slack, discord, teams, generic, apprise; got 'irc'"):
        chat_sink("https://chat.example.com/hook", kind="irc")
    with pytest.raises(ValueError, match=r"must be an http\(s\) URL such as https://hooks\.slack\.com"):
        chat_sink("https:///services/T0/B0/XXXX")


@pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")  # apprise's email plugin, 3.11-3.12
async def test_apprise_urls_go_through_apprise(receiver: WebhookReceiver) -> None:
    """Any other scheme is apprise's (here its json:// service, posting to the local receiver)."""
    pytest.importorskip("apprise")
    url = receiver.url.replace("http://", "json://")
    await chat_sink(url, DASHBOARD)([GOLDEN])
    [body] = receiver.bodies
    assert body["title"] == "[FIRING] GoldenMismatch on prod (critical)" and body["type"] == "failure"
    assert "GoldenMismatch" in body["message"] and f"{DASHBOARD}/dashboard/" in body["message"]
    receiver.failing = True
    with pytest.raises(RuntimeError, match="apprise could not deliver to json://…"):
        await chat_sink(url, DASHBOARD)([GOLDEN])


def test_without_apprise_an_apprise_url_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in kinds need nothing more; a URL only apprise speaks says which extra to install."""
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if not installed: importing it raises
    with pytest.raises(ValueError, match=r"tgram://… is an apprise URL, .*pip install 'yolowatch\[apprise\]'"):
        chat_sink("tgram://bottoken/ChatID")
    chat_sink("https://hooks.slack.com/services/T0/B0/XXXX")


# Routing, and the outbox's guarantee through the channels.


def test_summary_lines_count_and_name_what_changed() -> None:
    """One alert: its status, rule, deployment (and class) and severity; several: counts per status."""
    resolved = Notification("HighErrorRate", "staging", "resolved", 1, 2, 0.0, "warning", "", id=3)
    assert summary_line([HOSTILE]) == "[FIRING] PersonDrop on prod, class <b>person</b> (warning)"
    assert summary_line([resolved]) == "[RESOLVED] HighErrorRate on staging (warning)"
    both = "[FIRING:1, RESOLVED:1] GoldenMismatch, HighErrorRate on prod, staging (critical)"
    assert summary_line([GOLDEN, resolved]) == both


ANY_ERROR = Rule("AnyError", "error_rate", "above", 0.0, for_s=0, severity="critical", runbook="read the logs")
SLOW = Rule("Slow", "p95_ms", "above", 500, for_s=0, severity="warning", runbook="check the GPU")


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_channel_gets_only_what_it_wants_and_is_never_retried_for_the_rest(
    make_store: Callable[..., Store], clock: FakeClock, receiver: WebhookReceiver
) -> None:
    """Email takes critical alerts only, a chat channel one rule only: the others count as delivered to them."""
    store = make_store("routes.db")
    mailed: list[list[str]] = []

    async def mailbox(notifications: list[Notification]) -> None:
        mailed.append([n.rule for n in notifications])

    sinks = {
        "email": routed(mailbox, severities=frozenset({"critical"})),
        "chat": routed(chat_sink(receiver.url, kind="generic"), rules=frozenset({"Slow"})),
    }
    evaluator = alert_evaluator(store, [ANY_ERROR, SLOW], sinks, clock=clock)
    await evaluator.evaluate("prod", 60, {"error_rate": 0.5, "p95_ms": 900.0})
    assert await evaluator.deliver() == 4  # two notifications, each settled for both channels
    assert mailed == [["AnyError"]]
    assert [body["text"].count("\n") + 1 for body in receiver.bodies] == [2] and "Slow" in receiver.bodies[0]["text"]
    assert await store.undelivered("email") == [] and await store.undelivered("chat") == []
    assert await evaluator.deliver() == 0 and len(mailed) == 1 and len(receiver.bodies) == 1
    with pytest.raises(ValueError, match="severities must be warning and/or critical; got page"):
        routed(mailbox, severities=frozenset({"page"}))


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_firing_alert_arrives_once_by_email_and_once_by_chat_across_a_restart_and_an_outage(
    make_store: Callable[..., Store],
    clock: FakeClock,
    receiver: WebhookReceiver,
    smtp: SmtpServer,
    certificates: Certificates,
) -> None:
    """The issue's promise, through the real outbox: the chat receiver is down when the alert fires, so the email
    goes at once and the chat post once the receiver is back (after the backoff pause), and neither is repeated
    by later rounds or by a restart on the same database; the resolution then arrives once on each."""

    def evaluator(store: Store) -> Any:
        sinks = {"email": mail_to(smtp, certificates), "chat": chat_sink(receiver.url, DASHBOARD, kind="slack")}
        return alert_evaluator(store, [ANY_ERROR], sinks, clock=clock)

    store = make_store("outbox.db")
    first = evaluator(store)
    assert [n.status for n in await first.evaluate("prod", 60, {"error_rate": 0.5})] == ["firing"]
    receiver.failing = True
    assert await first.deliver() == 1 and len(smtp.received) == 1 and receiver.attempts == 1
    for _ in range(3):  # the delivery loop's next rounds, within the one-second pause
        assert await first.deliver() == 0
    assert receiver.attempts == 1 and len(smtp.received) == 1  # the chat is not hammered, the email not resent
    receiver.failing = False
    clock.advance(1.0)
    assert await first.deliver() == 1 and receiver.attempts == 2 and len(receiver.bodies) == 1
    await store.close()  # "restart"

    store = make_store("outbox.db")
    second = evaluator(store)
    assert await second.deliver() == 0
    assert len(smtp.received) == 1 and len(receiver.bodies) == 1
    assert [n.status for n in await second.evaluate("prod", 120, {"error_rate": 0.0})] == ["resolved"]
    assert await second.deliver() == 2 and await second.deliver() == 0
    subjects = [mail.message["Subject"] for mail in smtp.received]
    assert subjects == ["[FIRING] AnyError on prod (critical)", "[RESOLVED] AnyError on prod (critical)"]
    assert [body["text"].splitlines()[0] for body in receiver.bodies] == [f"*{s}*" for s in subjects]
