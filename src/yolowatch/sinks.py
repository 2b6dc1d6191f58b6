"""Where alert notifications go: the log; a webhook with Alertmanager's body (any of its receivers take it); email
through SMTP; chat webhooks (Slack, Discord, Microsoft Teams, any {"text"} receiver, and apprise's services with its
extra); and `routed`, which gives a channel only the severities or rules it wants.

A sink is a coroutine over a batch of notifications that raises when it could not deliver; the
evaluator then keeps them undelivered and retries with backoff (alerts.Evaluator.deliver).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import html
import json
import logging
import re
import smtplib
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

from yolowatch._util import iso_time, parse_bool, redacted_url
from yolowatch.alerts import Sink, fingerprint
from yolowatch.records import Notification

log = logging.getLogger("yolowatch.alerts")


def _iso(epoch_s: int | None) -> str:
    return iso_time(epoch_s) if epoch_s else "0001-01-01T00:00:00Z"


def alertmanager_payload(notifications: list[Notification], external_url: str = "") -> dict[str, Any]:
    """Prometheus Alertmanager's webhook body (version 4), so any Alertmanager receiver can take it."""
    alerts: list[dict[str, Any]] = [
        {
            "status": n.status,
            "labels": {
                "alertname": n.rule,
                "deployment": n.deployment,
                "severity": n.severity,
                **({"class": n.class_name} if n.class_name else {}),
            },
            "annotations": {"runbook": n.runbook, "value": "" if n.value is None else f"{n.value:.6g}"},
            "startsAt": _iso(n.starts_at),
            "endsAt": _iso(n.ends_at),
            "generatorURL": f"{external_url}/dashboard/",
            "fingerprint": fingerprint(n.rule, n.deployment),
        }
        for n in notifications
    ]
    status = "firing" if any(n.status == "firing" for n in notifications) else "resolved"
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    return {
        "version": "4",
        "groupKey": "{}:" + json.dumps(common, sort_keys=True),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "yolowatch",
        "groupLabels": {"alertname": common["alertname"]} if "alertname" in common else {},
        "commonLabels": common,
        "commonAnnotations": {
            k: v for k, v in alerts[0]["annotations"].items() if all(a["annotations"].get(k) == v for a in alerts)
        },
        "externalURL": external_url,
        "alerts": alerts,
    }


async def log_sink(notifications: list[Notification]) -> None:
    for n in notifications:
        level = logging.CRITICAL if n.severity == "critical" and n.status == "firing" else logging.WARNING
        scope = f"{n.deployment}, class {n.class_name}" if n.class_name else n.deployment
        log.log(level, "alert %s %s for %s (value %s): %s", n.rule, n.status.upper(), scope, n.value, n.runbook)


def webhook_sink(url: str, external_url: str = "", timeout_s: float = 10.0) -> Sink:
    """POST the Alertmanager-shaped body; an error raises, so the notifications stay undelivered and are retried."""
    shown = redacted_url(url)  # errors name the receiver without its user:password

    async def send(notifications: list[Notification]) -> None:
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                response = await client.post(url, json=alertmanager_payload(notifications, external_url))
        except httpx.HTTPError as exc:
            raise RuntimeError(f"{type(exc).__name__} sending to {shown}") from None
        if response.status_code >= 300:
            raise RuntimeError(f"{shown} answered {response.status_code}")

    return send


# Routing: which notifications a channel takes.

SEVERITIES = frozenset({"warning", "critical"})


def routed(sink: Sink, *, severities: frozenset[str] | None = None, rules: frozenset[str] | None = None) -> Sink:
    """`sink` for the notifications it wants only (these severities, these rules; None: any). The others count as
    delivered to it, so a channel is never retried for what it does not take."""
    if severities is not None and (not severities or not severities <= SEVERITIES):
        raise ValueError(f"severities must be warning and/or critical; got {', '.join(sorted(severities)) or 'none'}")
    if rules is not None and not rules:
        raise ValueError("rules must name at least one rule (or be left out for every rule)")

    async def send(notifications: list[Notification]) -> None:
        wanted = [
            n
            for n in notifications
            if (severities is None or n.severity in severities) and (rules is None or n.rule in rules)
        ]
        if wanted:
            await sink(wanted)

    return send


# What every channel says: a summary line, and a line or a block per alert.


def _scope(n: Notification) -> str:
    return f"{n.deployment}, class {n.class_name}" if n.class_name else n.deployment


def _when(epoch_s: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch_s)) if epoch_s else "unknown"


def _value(n: Notification) -> str:
    return "no data" if n.value is None else f"{n.value:.6g}"


def _listed(names: list[str], most: int = 3) -> str:
    unique = list(dict.fromkeys(names))
    shown = ", ".join(unique[:most])
    return f"{shown} and {len(unique) - most} more" if len(unique) > most else shown


def summary_line(notifications: list[Notification]) -> str:
    """`[FIRING] GoldenMismatch on prod (critical)`, `[FIRING:2, RESOLVED:1] A, B on prod, staging (critical)`:
    an email's subject, a chat message's title."""
    firing = sum(n.status == "firing" for n in notifications)
    if len(notifications) == 1:
        counts, where = notifications[0].status.upper(), _scope(notifications[0])
    else:
        counted = (("FIRING", firing), ("RESOLVED", len(notifications) - firing))
        counts, where = ", ".join(f"{w}:{k}" for w, k in counted if k), _listed([n.deployment for n in notifications])
    severity = "critical" if any(n.severity == "critical" for n in notifications) else "warning"
    line = f"[{counts}] {_listed([n.rule for n in notifications])} on {where} ({severity})"
    return " ".join(line.split())  # no line break from a name reaches a header


def _dashboard(external_url: str) -> str:
    return f"{external_url.rstrip('/')}/dashboard/" if external_url else ""


# Email: one message a batch, through SMTP with STARTTLS (or TLS from the start), on a worker thread.

SMTP_EXAMPLE = "smtp://alerts@smtp.example.com:587"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how mail goes. `security`: starttls (upgrade a plain connection: port 587), tls (TLS from the
    start: port 465) or none (plain, for a local relay, only when asked). Certificates are always verified,
    against `ca_file` instead of the system's CAs when given (a private relay)."""

    host: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in ("starttls", "tls", "none"):
            raise ValueError(f"SMTP security must be starttls, tls or none; got {self.security!r}")
        if self.password and not self.username:
            raise ValueError(f"an SMTP password needs a user in the URL ({SMTP_EXAMPLE})")
        if self.username and not self.password:
            raise ValueError(
                f"the SMTP user {self.username!r} needs a password: set YOLOWATCH_SMTP_PASSWORD or --smtp-password-file"
            )
        if self.password and self.security == "none" and self.host.lower() not in LOOPBACK_HOSTS:
            raise ValueError(
                f"a password is never sent to {self.host} unencrypted: drop starttls=false, or use smtps://"
            )

    @property
    def shown(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str, *, password: str = "", ca_file: str = "", timeout_s: float = 30.0) -> SmtpSettings:
    """smtp://[user@]host[:port] (STARTTLS, port 587 unless given), smtps://[user@]host[:port] (TLS, port 465);
    `smtp://host:25?starttls=false` for a plain local relay. The password comes from a file or the environment,
    never from the URL. ValueError in one sentence, never showing the URL's credentials."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
        has_password = parts.password is not None
    except ValueError:  # a port that is no number, a bad IPv6 host: say so without echoing what may be a secret
        raise ValueError(f"the SMTP URL is not a URL such as {SMTP_EXAMPLE} (port 1-65535)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError(f"the SMTP URL must start with smtp:// (STARTTLS) or smtps:// (TLS), as {SMTP_EXAMPLE}")
    if has_password:
        raise ValueError(
            "the SMTP URL must not hold the password: put it in YOLOWATCH_SMTP_PASSWORD or a file named by "
            "--smtp-password-file"
        )
    if not parts.hostname:
        raise ValueError(f"the SMTP URL names no host, as {SMTP_EXAMPLE} does")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError(f"the SMTP URL takes no path: {scheme}://[user@]host[:port][?starttls=false]")
    security = "tls" if scheme == "smtps" else "starttls"
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key != "starttls":
            raise ValueError(f"the SMTP URL takes one parameter, starttls; got {key!r}")
        if scheme == "smtps":
            raise ValueError("smtps:// is TLS from the start: starttls applies to smtp:// only")
        security = "starttls" if parse_bool(value) else "none"
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if scheme == "smtps" else 587),
        security=security,
        username=urllib.parse.unquote(parts.username or ""),
        password=password,
        ca_file=ca_file,
        timeout_s=timeout_s,
    )


def _address(text: str, what: str) -> str:
    """The address part of `text` (`Name <a@b>` or `a@b`); ValueError naming `what` otherwise."""
    _, address = email.utils.parseaddr(text)
    if not address or "@" not in address or any(c.isspace() for c in address) or "\n" in text or "\r" in text:
        raise ValueError(f"{what} must be an email address such as alerts@example.com; got {text!r}")
    return address


def email_message(
    notifications: list[Notification], sender: str, recipients: list[str], external_url: str = ""
) -> EmailMessage:
    """The message for a batch: a plain-text body listing every alert, and an HTML alternative (all escaped)."""
    dashboard = _dashboard(external_url)
    message = EmailMessage()
    message["Subject"] = summary_line(notifications)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.formatdate(usegmt=True)
    # The sender's domain, not socket.getfqdn() (a DNS lookup on every message).
    message["Message-ID"] = email.utils.make_msgid("yolowatch", domain=_address(sender, "sender").rsplit("@", 1)[1])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to an alert
    text = [f"yolowatch: {_counted(notifications)}", ""]
    for n in notifications:
        text.append(f"[{n.status.upper()}] {n.rule} on {_scope(n)} ({n.severity})")
        text.extend(f"  {label + ':':<10} {value}" for label, value in _email_rows(n))
        text.append("")
    if dashboard:
        text.append(f"Dashboard: {dashboard}")
    message.set_content("\n".join(text))
    message.add_alternative(_email_html(notifications, dashboard), subtype="html")
    return message


def _counted(notifications: list[Notification]) -> str:
    firing = sum(n.status == "firing" for n in notifications)
    words = [
        f"{firing} firing" if firing else "",
        f"{len(notifications) - firing} resolved" if firing < len(notifications) else "",
    ]
    return ", ".join(w for w in words if w)


def _email_rows(n: Notification) -> list[tuple[str, str]]:
    rows = [("status", n.status), ("rule", n.rule), ("deployment", n.deployment)]
    if n.class_name:
        rows.append(("class", n.class_name))
    rows += [("severity", n.severity), ("value", _value(n)), ("since", _when(n.starts_at))]
    if n.status == "resolved":
        rows.append(("ended", _when(n.ends_at)))
    if n.runbook:
        rows.append(("runbook", n.runbook))
    return rows


def _email_html(notifications: list[Notification], dashboard: str) -> str:
    esc = html.escape
    parts = [f"<p>yolowatch: {esc(_counted(notifications))}</p>"]
    for n in notifications:
        color = "#1a7f37" if n.status == "resolved" else "#cf222e" if n.severity == "critical" else "#9a6700"
        parts.append(
            f'<h3 style="color:{color}">[{esc(n.status.upper())}] {esc(n.rule)} on {esc(_scope(n))} '
            f"({esc(n.severity)})</h3>"
        )
        cells = "".join(f"<tr><th align=left>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _email_rows(n))
        parts.append(f"<table>{cells}</table>")
    if dashboard:
        parts.append(f'<p><a href="{esc(dashboard)}">Open the dashboard</a></p>')
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def email_sink(smtp: SmtpSettings, sender: str, recipients: list[str], external_url: str = "") -> Sink:
    """One message a batch to `recipients`, through `smtp`. A failure raises (the notifications are kept and retried);
    its message names the server, never the password."""
    from_address = _address(sender, "the sender")
    to_addresses = [_address(r, "a recipient") for r in recipients]
    if not to_addresses:
        raise ValueError("email alerts need at least one recipient")
    try:
        context = ssl.create_default_context(cafile=smtp.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"the SMTP CA file {smtp.ca_file} cannot be used: {exc}") from None

    async def send(notifications: list[Notification]) -> None:
        message = email_message(notifications, sender, recipients, external_url)
        await asyncio.to_thread(_send_mail, smtp, context, message, from_address, to_addresses)

    return send


def _send_mail(
    smtp: SmtpSettings, context: ssl.SSLContext, message: EmailMessage, sender: str, recipients: list[str]
) -> None:
    """Blocking: connect, secure, log in, send, quit. Errors become RuntimeErrors that name the server only."""
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        try:
            client.ehlo()
            if smtp.security == "starttls":
                if not client.has_extn("starttls"):
                    raise RuntimeError(
                        f"{smtp.shown} offers no STARTTLS: use smtps:// if it speaks TLS, or starttls=false for a "
                        "local relay"
                    )
                client.starttls(context=context)
            if smtp.username:
                client.ehlo_or_helo_if_needed()
                if not client.has_extn("auth"):
                    raise RuntimeError(f"{smtp.shown} offers no login (AUTH) here: drop the user from the SMTP URL")
                client.login(smtp.username, smtp.password)
            refused = client.send_message(message, sender, recipients)
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):  # accepted is sent: a failed goodbye is no retry
                client.quit()
            client.close()
    except smtplib.SMTPAuthenticationError as exc:
        raise RuntimeError(f"{smtp.shown} refused the login of {smtp.username!r} ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused:
        raise RuntimeError(f"{smtp.shown} refused every recipient") from None
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise RuntimeError(_scrubbed(f"{smtp.shown} answered {exc.smtp_code} {reply}", smtp.password)) from None
    except (smtplib.SMTPException, OSError, UnicodeError) as exc:
        detail = f": {exc}" if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)) else ""
        raise RuntimeError(
            _scrubbed(f"{type(exc).__name__} sending mail through {smtp.shown}{detail}", smtp.password)
        ) from None
    if refused:
        log.warning("mail to %s refused by %s; sent to the others", ", ".join(sorted(refused)), smtp.shown)


def _scrubbed(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


# Chat: Slack, Discord and Microsoft Teams webhooks, any JSON {"text"} receiver, and apprise's URLs for the rest.

CHAT_KINDS = ("slack", "discord", "teams", "generic", "apprise")
CHAT_EXAMPLE = "https://hooks.slack.com/services/T000/B000/XXXX"
MAX_CHAT_ALERTS = 20  # a batch after a long outage: the rest is "and N more", the dashboard has them all
CHAT_LIMITS = {"slack": 3900, "discord": 2000, "generic": 4000, "apprise": 4000}  # characters (Teams: a card)


def chat_kind(url: str) -> str:
    """What a chat URL is, by its host: slack, discord, teams (incoming webhooks and Power Automate workflows),
    generic (any other http(s) receiver of {"text": ...}) or apprise (any other scheme: tgram://, mailto://...)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        return "apprise"
    try:
        host = (httpx.URL(url).host or "").lower()
    except httpx.InvalidURL:
        return "generic"
    if host in ("hooks.slack.com", "hooks.slack-gov.com"):
        return "slack"
    if host.removeprefix("canary.").removeprefix("ptb.") in ("discord.com", "discordapp.com"):
        return "discord"
    if host.endswith((".webhook.office.com", ".logic.azure.com", ".environment.api.powerplatform.com")):
        return "teams"
    return "generic"


def shown_chat_url(url: str) -> str:
    """A chat URL as messages show it: scheme and host only. Webhook tokens live in the path (Slack, Discord)
    or the query (Teams workflows' sig=), apprise's in the rest."""
    if "://" not in url:
        return "<an invalid URL>"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        return f"{scheme}://…"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<an invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{scheme}://{host}{port}/…"


def _markdown_escaped(special: str) -> Callable[[str], str]:
    pattern = re.compile(f"([{re.escape(special)}])")
    return lambda text: pattern.sub(r"\\\1", text)


def _slack_escaped(text: str) -> str:
    """Slack reads &, < and > as its control sequences (links, <!channel>): only these three are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mentions_neutralized(text: str) -> str:
    """@everyone, @channel, <users/all>, <b>: a zero-width space after @ or < keeps any receiver from reading them."""
    return re.sub(r"(?<![\w.])([@<])(?=[\w!#/@])", "\\1\u200b", text)


_discord_escaped = _markdown_escaped("\\`*_~|[]<>")
_teams_escaped = _markdown_escaped("\\`*_[]")


def _chat_line(n: Notification, escape: Callable[[str], str], bold: str) -> str:
    if n.status == "resolved":
        icon, word, when = "✅", "RESOLVED", f"resolved {_when(n.ends_at)}"
    else:
        icon, word, when = ("🚨" if n.severity == "critical" else "⚠️"), "FIRING", f"since {_when(n.starts_at)}"
    parts = [
        f"{icon} {bold}{word}{bold} {escape(n.rule)} on {escape(_scope(n))} ({n.severity})",
        f"value {_value(n)}",
        when,
    ]
    if n.runbook:
        parts.append(escape(" ".join(n.runbook.split())))
    return " · ".join(parts)


def _fitted(head: list[str], lines: list[str], tail: list[str], limit: int) -> str:
    """head, as many alert lines as fit `limit` characters (and MAX_CHAT_ALERTS), "… and N more", tail."""
    kept = lines[:MAX_CHAT_ALERTS]
    while True:
        more = [f"… and {len(lines) - len(kept)} more"] if len(kept) < len(lines) else []
        text = "\n".join([*head, *kept, *more, *tail])
        if len(text) <= limit or not kept:
            return text[:limit]
        kept = kept[:-1]


def chat_body(kind: str, notifications: list[Notification], external_url: str = "") -> dict[str, Any]:
    """The JSON a chat webhook of `kind` takes, with what the platform would interpret escaped or neutralised."""
    dashboard = _dashboard(external_url)
    title = summary_line(notifications)
    if kind == "teams":
        return _teams_card(notifications, title, dashboard)
    limit = CHAT_LIMITS[kind]
    if kind == "slack":
        lines = [_chat_line(n, _slack_escaped, "*") for n in notifications]
        link = [f"<{_slack_escaped(dashboard)}|Open the dashboard>"] if dashboard else []
        return {"text": _fitted([f"*{_slack_escaped(title)}*"], lines, link, limit)}
    if kind == "discord":
        lines = [_chat_line(n, _discord_escaped, "**") for n in notifications]
        link = [f"Dashboard: <{dashboard}>"] if dashboard else []  # <...>: a link without an embedded preview
        # allowed_mentions: no @everyone, @here, role or user ping, whatever the text holds.
        return {"content": _fitted([f"**{_discord_escaped(title)}**"], lines, link, limit),
                "allowed_mentions": {"parse": []}}  # fmt: skip
    lines = [_chat_line(n, _mentions_neutralized, "") for n in notifications]
    link = [f"Dashboard: {dashboard}"] if dashboard else []
    return {"text": _fitted([_mentions_neutralized(title)], lines, link, limit)}


def _teams_card(notifications: list[Notification], title: str, dashboard: str) -> dict[str, Any]:
    """An Adaptive Card in a message: what Teams incoming webhooks and Power Automate's "post to a channel when a
    webhook request is received" both take. Adaptive Cards render no HTML; Markdown is escaped."""
    blocks: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _teams_escaped(title), "weight": "Bolder", "size": "Medium", "wrap": True}
    ]
    for n in notifications[:MAX_CHAT_ALERTS]:
        color = "Good" if n.status == "resolved" else "Attention" if n.severity == "critical" else "Warning"
        blocks.append({"type": "TextBlock", "text": _chat_line(n, _teams_escaped, "**"), "wrap": True, "color": color})
    if len(notifications) > MAX_CHAT_ALERTS:
        blocks.append({"type": "TextBlock", "text": f"… and {len(notifications) - MAX_CHAT_ALERTS} more", "wrap": True})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": blocks,
    }
    if dashboard:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the dashboard", "url": dashboard}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def chat_sink(url: str, external_url: str = "", kind: str | None = None, timeout_s: float = 10.0) -> Sink:
    """POST each batch to a chat webhook (its kind from the host, unless given); a non-2xx answer raises, so the
    notifications are kept and retried. Messages show the URL's scheme and host only: the token is the rest."""
    kind = kind or chat_kind(url)
    if kind not in CHAT_KINDS:
        raise ValueError(f"a chat kind must be one of {', '.join(CHAT_KINDS)}; got {kind!r}")
    if kind == "apprise":
        return apprise_sink(url, external_url)
    shown = shown_chat_url(url)
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        target = None
    if target is None or target.scheme not in ("http", "https") or not target.host:
        raise ValueError(f"a chat webhook must be an http(s) URL such as {CHAT_EXAMPLE}; got {shown}")
    proxy = _environment_proxy(target)
    timeout = httpx.Timeout(timeout_s).as_dict()

    async def send(notifications: list[Notification]) -> None:
        request = httpx.Request("POST", target, json=chat_body(kind, notifications, external_url))
        request.extensions["timeout"] = timeout
        try:
            # The transport, not a Client: httpx's Client logs every request's full URL (the token) at INFO.
            async with httpx.AsyncHTTPTransport(proxy=proxy) as transport:
                response = await transport.handle_async_request(request)
                await response.aclose()
        except httpx.HTTPError as exc:
            raise RuntimeError(f"{type(exc).__name__} posting to {shown}") from None
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"{shown} answered {response.status_code}")

    return send


def _environment_proxy(url: httpx.URL) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for `url`, unless NO_PROXY exempts its host: what an
    httpx Client would use."""
    if urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all") or None


def apprise_sink(url: str, external_url: str = "") -> Sink:
    """Any of the services apprise speaks (tgram://, mailto://, pover://, ...: its wiki lists them), with the
    optional apprise extra. A failed delivery raises, as every sink's does."""
    shown = shown_chat_url(url)
    try:
        import apprise
    except ImportError:
        raise ValueError(
            f"{shown} is an apprise URL, and apprise is not installed: pip install 'yolowatch[apprise]'"
        ) from None
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise ValueError(f"apprise does not understand the URL {shown}: see https://github.com/caronc/apprise/wiki")
    dashboard = _dashboard(external_url)

    async def send(notifications: list[Notification]) -> None:
        lines = [_chat_line(n, _mentions_neutralized, "") for n in notifications]
        body = _fitted([], lines, [f"Dashboard: {dashboard}"] if dashboard else [], CHAT_LIMITS["apprise"])
        firing = [n for n in notifications if n.status == "firing"]
        kind = (
            apprise.NotifyType.SUCCESS
            if not firing
            else apprise.NotifyType.FAILURE
            if any(n.severity == "critical" for n in firing)
            else apprise.NotifyType.WARNING
        )
        title = _mentions_neutralized(summary_line(notifications))
        delivered = await notifier.async_notify(
            body=body, title=title, notify_type=kind, body_format=apprise.NotifyFormat.TEXT
        )
        if not delivered:
            raise RuntimeError(f"apprise could not deliver to {shown}")

    return send
