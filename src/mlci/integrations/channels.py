"""The channels a notification is sent through: email over SMTP, and a JSON webhook.

Each sends one stored `OutboxMessage`; secrets (the SMTP password, a webhook URL's path) never reach a log.
"""
from __future__ import annotations

import base64
import json
import os
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from typing import Callable
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses
from urllib.parse import urlsplit


from mlci import __version__
from mlci.core.config import NotifyConfig
from mlci.core.errors import ConfigError
from mlci.integrations.message import OutboxMessage


PASSWORD_ENV = "MLCI_SMTP_PASSWORD"
WEBHOOK_ENV = "MLCI_WEBHOOK_URL"  # Slack-style URLs carry their secret in the path
LOOPBACK = ("127.0.0.1", "::1", "localhost")
DATA_SENT = "data-sent"  # the stage after which a lost reply leaves the delivery unconfirmed

Stage = Callable[[str], None]



# ----------------------------------------------------------------------------- channel errors


class ChannelFailure(Exception):
    """A channel's delivery failed; `transient` ones are retried with backoff."""

    def __init__(self, line: str, *, transient: bool):
        super().__init__(line)
        self.line = line
        self.transient = transient


def _scrub(text: str, secrets: list[str]) -> str:
    """Remove a password (and its base64 forms, as AUTH PLAIN/LOGIN send it) from a message."""
    for secret in [s for s in secrets if s]:
        forms = {secret, base64.b64encode(secret.encode()).decode()}
        for form in forms:
            text = text.replace(form, "***")
    return " ".join(text.split())


def _smtp_reply(exc: smtplib.SMTPResponseException) -> str:
    reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {reply}"


# ----------------------------------------------------------------------------- notifiers


class Notifier(ABC):
    """A channel. `send` raises ChannelFailure; the caller retries transient ones and keeps the outbox."""

    name = "channel"

    def __init__(self, config: NotifyConfig):
        self.config = config

    def prepare(self, message: OutboxMessage, attachment: bytes | None) -> bool:
        """Add what this channel needs to the stored message before anything is sent; True if changed."""
        return False

    @abstractmethod
    def send(self, message: OutboxMessage, stage: Stage | None = None) -> str:
        """Deliver the message; returns where it went, in words without secrets.

        `stage(name)` is called (and persisted by the caller) before each step the server may act on."""


class EmailNotifier(Notifier):
    """SMTP with STARTTLS, implicit TLS or none; the password only from MLCI_SMTP_PASSWORD."""

    name = "email"

    def __init__(self, config: NotifyConfig):
        super().__init__(config)
        if not config.to:
            raise ConfigError("[notify] smtp_host is set but 'to' is empty",
                              hint="add to = [\"dev@example.com\"] to [notify] in mlci.toml")
        self.password = os.environ.get(PASSWORD_ENV) or None
        self.where = f"{config.smtp_host}:{config.smtp_port}"

    def sender(self) -> str:
        if self.config.from_:
            return self.config.from_
        if self.config.smtp_user and "@" in self.config.smtp_user:
            return self.config.smtp_user
        return f"mlci@{socket.getfqdn()}"

    def prepare(self, message: OutboxMessage, attachment: bytes | None) -> bool:
        if message.email is not None:
            return False
        mail = EmailMessage(policy=SMTP_POLICY)
        try:
            mail["Subject"] = message.subject
            mail["From"] = self.sender()
            mail["To"] = ", ".join(self.config.to)
            if self.config.cc:
                mail["Cc"] = ", ".join(self.config.cc)
        except ValueError as exc:  # the email package refuses CR/LF in any header value
            raise ConfigError(f"[notify] a header value is invalid ({exc})",
                              hint="addresses and names must be single lines") from None
        mail["Date"] = format_datetime(datetime.now(timezone.utc))
        mail["Message-ID"] = message.message_id
        mail["X-Mlci-Run"] = message.run_id
        mail["X-Mlci-Event"] = message.event
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        if attachment is not None and message.attachment:
            mail.add_attachment(attachment, maintype="image", subtype="png", filename=message.attachment)
        message.email = mail.as_bytes().decode("ascii")
        message.email_from = self.sender()
        message.email_rcpt = [address for _, address in getaddresses([*self.config.to, *self.config.cc])]
        return True

    def _connect(self, context: ssl.SSLContext | None) -> smtplib.SMTP:
        host, port, timeout = self.config.smtp_host, self.config.smtp_port, self.config.timeout
        if self.config.security == "ssl":
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        return smtplib.SMTP(host, port, timeout=timeout)

    def send(self, message: OutboxMessage, stage: Stage | None = None) -> str:
        config = self.config
        stage = stage or (lambda _name: None)
        if message.email is None or not message.email_rcpt:
            raise ChannelFailure("the stored message has no email part", transient=False)
        if config.smtp_user and config.security == "none" and config.smtp_host not in LOOPBACK:
            raise ChannelFailure("smtp_user is set with security = \"none\": the password would cross the network "
                           "in clear text; use security = \"starttls\" or \"ssl\"", transient=False)
        if config.smtp_user and not self.password:
            raise ChannelFailure(f"smtp_user '{config.smtp_user}' is set but {PASSWORD_ENV} is not; export it "
                           f"(in Jenkins bind the SMTP credential to {PASSWORD_ENV})", transient=False)
        try:
            # loading the system's CA store costs ~17 ms: only where TLS is used
            context = ssl.create_default_context(cafile=config.ca_file) if config.security != "none" else None
        except (OSError, ssl.SSLError) as exc:
            raise ChannelFailure(f"[notify] ca_file '{config.ca_file}' cannot be loaded ({exc})", transient=False) from None
        secrets = [self.password or ""]
        try:
            stage("connecting")
            with self._connect(context) as client:
                client.ehlo()
                if config.security == "starttls":
                    if not client.has_extn("starttls"):
                        raise ChannelFailure(f"SMTP {self.where} does not offer STARTTLS; use security = \"ssl\" "
                                       "for port 465, or \"none\" on a trusted network", transient=False)
                    client.starttls(context=context)
                    client.ehlo()
                if config.smtp_user:
                    client.login(config.smtp_user, self.password or "")
                refused = _transmit(client, message, stage)
        except ChannelFailure:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelFailure(_scrub(f"SMTP {self.where} refused the login of '{config.smtp_user}' "
                                  f"({_smtp_reply(exc)}); check smtp_user and {PASSWORD_ENV}", secrets),
                           transient=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ChannelFailure(_scrub(f"SMTP {self.where}: {exc}; check [notify] security and smtp_user", secrets),
                           transient=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            raise ChannelFailure(f"SMTP {self.where} refused every recipient "
                           f"({', '.join(f'{a}: {c}' for a, (c, _) in exc.recipients.items())})",
                           transient=all(400 <= code < 500 for code in codes)) from None
        except smtplib.SMTPResponseException as exc:
            raise ChannelFailure(_scrub(f"SMTP {self.where} answered {_smtp_reply(exc)}", secrets),
                           transient=400 <= exc.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise ChannelFailure(f"the certificate of SMTP {self.where} cannot be verified ({exc.verify_message}); "
                           "set [notify] ca_file to the PEM of the CA that signed it", transient=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            # down, refused, reset, timed out: the next attempt may find the server back
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise ChannelFailure(_scrub(f"SMTP {self.where} unreachable ({reason})", secrets), transient=True) from None
        accepted = [a for a in message.email_rcpt if a not in refused]
        note = f" (refused: {', '.join(refused)})" if refused else ""
        return f"{', '.join(accepted)} via {self.where}{note}"


def _transmit(client: smtplib.SMTP, message: OutboxMessage, stage: Stage) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT, DATA as smtplib.sendmail does them, with the stage written just before the message's bytes
    go: once they have, a lost reply must not make mlci send the message again (the server may keep it)."""
    code, reply = client.mail(message.email_from)
    if code != 250:
        client.rset()
        raise smtplib.SMTPSenderRefused(code, reply, message.email_from)
    refused = {}
    for address in message.email_rcpt:
        code, reply = client.rcpt(address)
        if code not in (250, 251):
            refused[address] = (code, reply)
    if len(refused) == len(message.email_rcpt):
        client.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = client.docmd("data")
    if code != 354:
        client.rset()
        raise smtplib.SMTPDataError(code, reply)
    body = re.sub(rb"(?m)^\.", b"..", message.email.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii"))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    stage(DATA_SENT)
    client.send(body + b".\r\n")
    code, reply = client.getreply()
    if code != 250:
        stage("data-refused")  # a definite answer: the server did not take it, a retry is safe
        raise smtplib.SMTPDataError(code, reply)
    stage("accepted")
    return refused


class WebhookNotifier(Notifier):
    """A JSON POST with a Slack-compatible `text` field and every fact as its own key."""

    name = "webhook"

    def __init__(self, config: NotifyConfig, url: str):
        super().__init__(config)
        self.url = url
        parts = urlsplit(url)
        self.where = f"{parts.scheme}://{parts.netloc}"  # the path may be the secret (Slack)

    def send(self, message: OutboxMessage, stage: Stage | None = None) -> str:
        # At least once: a lost reply is retried, and the Idempotency-Key lets the receiver drop the repeat.
        body = json.dumps(message.payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"mlci/{__version__}",
            "Idempotency-Key": message.message_id,  # lets a receiver drop a repeat after a lost reply
        })
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            transient = exc.code in (408, 425, 429) or exc.code >= 500
            raise ChannelFailure(f"webhook {self.where} answered HTTP {exc.code} {exc.reason}", transient=transient) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ChannelFailure(f"webhook {self.where} unreachable ({reason})", transient=True) from None
        return f"{self.where} (HTTP {status})"


def webhook_url(config: NotifyConfig) -> str | None:
    from mlci.core.config import check_http_url

    url = config.webhook_url or os.environ.get(WEBHOOK_ENV) or None
    if url is not None:
        try:
            check_http_url(url)
        except ValueError as exc:  # the value itself is a secret (Slack): never shown
            raise ConfigError(f"{WEBHOOK_ENV} is not a valid URL: expected {exc}", hint="fix the variable") from None
    return url


def notifiers_for(config: NotifyConfig) -> list[Notifier]:
    """The channels `config` turns on: email when smtp_host is set, webhook when a URL is."""
    found: list[Notifier] = []
    if config.smtp_host:
        found.append(EmailNotifier(config))
    url = webhook_url(config)
    if url:
        found.append(WebhookNotifier(config, url))
    return found
