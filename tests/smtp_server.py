"""A real SMTP server on 127.0.0.1 for the email channel's tests (aiosmtpd), and a certificate authority made with
the openssl command for its TLS: the sink under test trusts that CA's file, as it would a private relay's."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from helpers import free_port


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # what the client trusts
    cert_file: Path  # the server's certificate for 127.0.0.1 and localhost, signed by the CA
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(folder: Path) -> Certificates:
    """A throwaway CA and a server certificate it signed (EC keys: fast), with the extensions strict verifiers ask."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make the test certificates")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    extensions = folder / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=yolowatch test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
         "-extfile", extensions],
    ):  # fmt: skip
        subprocess.run([openssl, *map(str, command)], check=True, capture_output=True)
    return Certificates(ca, cert, key)


@dataclass(frozen=True)
class Received:
    sender: str  # MAIL FROM
    recipients: list[str]  # RCPT TO
    message: EmailMessage
    over_tls: bool
    login: str  # the user that logged in, "" if none


class SmtpServer:
    """aiosmtpd on a free port of 127.0.0.1, keeping every message it accepts (`received`).

    `security`: none (plain), starttls (plain, then STARTTLS required before anything else) or tls (TLS from the
    start); `login`: (user, password) that AUTH requires (only over TLS)."""

    def __init__(
        self, security: str = "none", certificates: Certificates | None = None, login: tuple[str, str] | None = None
    ) -> None:
        self.received: list[Received] = []
        self.refused_logins = 0
        self.port = free_port()
        self.security = security
        self.user = login[0] if login else ""
        options: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "localhost"}
        if security != "none":
            assert certificates is not None, "TLS needs the test certificates"
            context = certificates.server_context()
            options.update({"tls_context": context, "require_starttls": True} if security == "starttls" else
                           {"ssl_context": context})  # fmt: skip
        if login:
            options["authenticator"] = self._authenticator(*login)
            if security == "tls":  # aiosmtpd counts STARTTLS only as TLS: it would offer no AUTH on a TLS port
                options["auth_require_tls"] = False  # (the tests check who logged in: `Received.login`)
            else:
                options["auth_required"] = True
        self._controller = Controller(self, **options)

    @property
    def url(self) -> str:
        """The URL a sink is given for this server (the password goes beside it, never in it)."""
        scheme = "smtps" if self.security == "tls" else "smtp"
        user = f"{self.user}@" if self.user else ""
        plain = "?starttls=false" if self.security == "none" else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}{plain}"

    def _authenticator(self, user: str, password: str) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data == (user.encode(), password.encode())
            self.refused_logins += not ok
            return AuthResult(success=ok, handled=False, auth_data=user if ok else None)  # aiosmtpd answers 235/535

        return check

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if session.authenticated else ""
        over_tls = server.transport.get_extra_info("ssl_object") is not None  # after STARTTLS, or from the start
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, over_tls, login or ""))
        return "250 OK"

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
