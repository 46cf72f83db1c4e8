"""Notifications against real servers on loopback: aiosmtpd (plain, STARTTLS + AUTH, implicit TLS)
with a self-signed certificate made here by openssl, and an http.server for the webhook."""
from __future__ import annotations

import email
import json
import os
import ssl
import subprocess
import sys
import threading
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from mlci.cli import main
from mlci.core.config import NotifyConfig, validate_config
from mlci.core.errors import EXIT_NOTIFY, EXIT_USAGE, ConfigError, NotifyError, UsageError
from mlci.integrations.channels import PASSWORD_ENV
from mlci.integrations.notify import flush, notify
from mlci.core.store import HparamsRecord, MetricsRecord, RunRecord, RunStore, write_json
from conftest import free_port

SRC = Path(__file__).resolve().parents[2] / "src"
PASSWORD = "Tr0ub4dor-and-3"


# ----------------------------------------------------------------------------- real servers


class Inbox:
    """aiosmtpd handler: keeps every message it accepts, with the session facts a test checks."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                              "message": email.message_from_bytes(envelope.content, policy=default_policy),
                              "tls": server.transport.get_extra_info("ssl_object") is not None,
                              "auth": session.authenticated})
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"ci" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


class Looking(Inbox):
    """Calls `look` as each message arrives and keeps what it returns (what the disk held then)."""

    def __init__(self, look):
        super().__init__()
        self.look, self.seen = look, []

    async def handle_DATA(self, server, session, envelope):
        self.seen.append(self.look())
        return await super().handle_DATA(server, session, envelope)


class LostReply(Inbox):
    """Keeps each of the first `lose` messages, then drops the connection before its reply: the client cannot
    know that the server kept it."""

    def __init__(self, lose: int):
        super().__init__()
        self.lose = lose

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.messages) <= self.lose:
            server.transport.abort()
        return reply


class SmtpServer:
    def __init__(self, port: int | None = None, inbox: Inbox | None = None, **kwargs):
        self.inbox = inbox or Inbox()
        self.port = port or free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl CLI (no `cryptography` in the venv)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def server_tls(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


class WebhookServer:
    """http.server on loopback; answers each POST with the next status of `statuses` (then 200). `look`, if
    given, is called as each POST arrives; what it returns is kept with the request (what the disk held then)."""

    def __init__(self, statuses: list[int] | None = None, look=None):
        self.requests: list[dict] = []
        statuses = list(statuses or [])
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body),
                                 "seen": look() if look else None})
                status = statuses.pop(0) if statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T000/SECRETPATH"

    def __enter__(self) -> "WebhookServer":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------- runs


def make_run(home: Path, *, values=(0.91, 0.95, 0.973), status="met", threshold=0.97, notify_config=None,
             model_name="mnist_cnn", plot=True, failed_trial=None):
    store = RunStore(home)
    best = max(range(len(values)), key=lambda i: values[i]) if values else None
    run = store.open_run(RunRecord(
        run_id="mnist_cnn-0123456789", model_name=model_name, model_file=str(home / "mnist_cnn.py"),
        source_dir=str(home), content_hash="c" * 64, commit="a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        config={"threshold": threshold, "metric": "accuracy", "notify": notify_config or {}},
        status=status, best_trial=best, best_value=values[best] if values else None,
        created_at="2026-11-23T10:00:00+00:00", finished_at="2026-11-23T10:04:30+00:00",
        message="the training image crashed" if status == "failed" else None))
    for number, value in enumerate(values):
        trial = run.new_trial()
        trial.write_hparams(HparamsRecord(trial=number, hparams={"epochs": 2 + number, "units": 32 * (number + 1)},
                                          proposed_by="baseline" if number == 0 else "ladder:units",
                                          change=None if number == 0 else f"units {32 * number} -> {32 * (number + 1)}"))
        write_json(trial.metrics_path, MetricsRecord(trial=number, value=value, accuracy=value, train_seconds=10.5 + number))
        trial.update_state(status="succeeded", wall_seconds=12.0 + number)
    if failed_trial is not None:
        trial = run.new_trial()
        trial.write_hparams(HparamsRecord(trial=trial.number, hparams={"epochs": 9}))
        trial.update_state(status="failed", reason="build_model raised ValueError", exit_code=1)
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(3, 2))
        axes.plot(range(len(values)), values, marker="o")
        axes.axhline(threshold, linestyle="--")
        figure.savefig(run.dir / "report.png")
        plt.close(figure)
    return run


def smtp_config(port: int, **changes) -> NotifyConfig:
    settings = {"smtp_host": "127.0.0.1", "smtp_port": port, "security": "none", "from": "ci@example.com",
                "to": ["dev@example.com", "Lead Dev <lead@example.com>"], "cc": ["qa@example.com"],
                "retries": 2, "backoff": 0.01, "timeout": 5}
    return NotifyConfig.model_validate({**settings, **changes})


def outbox_message(run, key="success") -> dict:
    return json.loads((run.outbox / f"{key}.json").read_text())


# ----------------------------------------------------------------------------- email


def test_email_arrives_with_text_html_attachment_and_the_outcome_in_the_subject(tmp_path):
    run = make_run(tmp_path)
    lines: list[str] = []
    with SmtpServer() as server:
        result = notify(run, config=smtp_config(server.port), echo=lines.append)
    assert len(server.inbox.messages) == 1
    got = server.inbox.messages[0]
    message = got["message"]
    assert message["subject"] == "✅ mnist_cnn reached accuracy 0.973 ≥ 0.97 in 3 trials"
    assert got["from"] == "ci@example.com"
    assert sorted(got["rcpt"]) == ["dev@example.com", "lead@example.com", "qa@example.com"]
    assert message["Cc"] == "qa@example.com" and "Bcc" not in message
    assert message.is_multipart() and message.get_content_type() == "multipart/mixed"
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    for body in (text, page):
        assert "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678" in body and "mnist_cnn-0123456789" in body
        assert "epochs=4, units=96" in body  # the best trial's hyperparameters
        assert "units 32 -&gt; 64" in body or "units 32 -> 64" in body  # the trial table
        assert "4m 30s" in body  # the run's duration
    assert "threshold ≥ 0.97: met" in text
    attachments = list(message.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["image/png"]
    assert attachments[0].get_content() == (run.dir / "report.png").read_bytes()
    stored = outbox_message(run)
    assert stored["deliveries"]["email"]["status"] == "sent" and stored["deliveries"]["email"]["attempts"] == 1
    assert message["Message-ID"] == stored["message_id"]
    assert result.ok and len(result.sent) == 1 and result.messages == [run.outbox / "success.json"]
    assert any("sent '✅ mnist_cnn" in line for line in lines)


def test_starttls_with_a_self_signed_certificate_and_auth(tmp_path, certificate, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    run = make_run(tmp_path)
    with SmtpServer(tls_context=server_tls(certificate), require_starttls=True, auth_required=True,
                    authenticator=authenticator) as server:
        notify(run, config=smtp_config(server.port, security="starttls", smtp_user="ci", ca_file=str(certificate[0])))
    [got] = server.inbox.messages
    assert got["tls"] and got["auth"]
    assert got["message"]["subject"].startswith("✅ mnist_cnn reached accuracy 0.973")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the port is TLS from the start
def test_implicit_tls_port(tmp_path, certificate, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    run = make_run(tmp_path)
    # aiosmtpd sees TLS only after STARTTLS, so on an implicit-TLS port it must be told AUTH is safe
    with SmtpServer(ssl_context=server_tls(certificate), authenticator=authenticator, auth_required=True,
                    auth_require_tls=False) as server:
        notify(run, config=smtp_config(server.port, security="ssl", smtp_user="ci", ca_file=str(certificate[0])))
    [got] = server.inbox.messages
    assert got["tls"] and got["auth"]


def test_untrusted_certificate_is_a_clear_error_without_retries(tmp_path, certificate, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    run = make_run(tmp_path)
    with SmtpServer(tls_context=server_tls(certificate), require_starttls=True, authenticator=authenticator) as server:
        with pytest.raises(NotifyError) as caught:
            notify(run, config=smtp_config(server.port, security="starttls", smtp_user="ci", retries=3))
    assert "cannot be verified" in str(caught.value) and "ca_file" in str(caught.value)
    assert server.inbox.messages == []
    delivery = outbox_message(run)["deliveries"]["email"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1  # not retried: it would fail the same way


def test_server_down_keeps_the_message_and_flush_delivers_it_once(tmp_path):
    run = make_run(tmp_path)
    port = free_port()  # nothing listens here yet
    config = smtp_config(port, retries=2)
    lines: list[str] = []
    with pytest.raises(NotifyError) as caught:
        notify(run, config=config, echo=lines.append)
    error = caught.value
    assert error.exit_code == EXIT_NOTIFY == 8
    assert f"SMTP 127.0.0.1:{port} unreachable" in str(error) and "after 3 attempts" in str(error)
    assert f"kept in {run.outbox / 'success.json'}" in str(error) and "mlci notify --flush --run mnist_cnn-0123456789" in str(error)
    assert "\n" not in str(error)
    assert sum("retrying in" in line for line in lines) == 2
    assert lines[-1] == f"notify: email: not delivered, kept in {run.outbox / 'success.json'}"
    stored = outbox_message(run)
    assert stored["deliveries"]["email"]["status"] == "pending" and stored["deliveries"]["email"]["attempts"] == 3
    assert "Subject: =?utf-8?" in stored["email"]  # the whole message is in the outbox before any send

    with pytest.raises(NotifyError, match=r"unreachable \(Connection refused\) \(after 3 attempts\)") as still:
        flush(run, config=config)  # still down: this call's attempts are counted, the record keeps all
    assert still.value.one_line().endswith("; send it later with `mlci notify --flush --run mnist_cnn-0123456789`")
    assert outbox_message(run)["deliveries"]["email"]["attempts"] == 6

    with SmtpServer(port=port) as server:
        result = flush(run, config=config)
        assert result.ok and len(result.sent) == 1
        flush(run, config=config)  # nothing pending: no second copy
        again = notify(run, config=config)  # the same event again: not re-sent
        assert again.already_sent == ["mnist_cnn-0123456789/success"]
        flush(RunStore(tmp_path), config=config)  # a whole-store flush finds nothing either
    assert len(server.inbox.messages) == 1
    assert server.inbox.messages[0]["message"]["Message-ID"] == stored["message_id"]
    assert outbox_message(run)["deliveries"]["email"]["status"] == "sent"


def test_two_processes_announcing_at_once_send_one_message(tmp_path):
    run = make_run(tmp_path)
    with SmtpServer() as server:
        config = smtp_config(server.port)
        threads = [threading.Thread(target=notify, args=(run,), kwargs={"config": config}) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(server.inbox.messages) == 1


def run_cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), **env_extra}
    env.pop(PASSWORD_ENV, None) if PASSWORD_ENV not in env_extra else None
    return subprocess.run([sys.executable, "-m", "mlci", "notify", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_wrong_password_is_a_clear_error_and_the_password_is_never_shown(tmp_path, certificate, caplog, monkeypatch):
    caplog.set_level("DEBUG")
    wrong = "Wr0ng-Secret-xyz"
    with SmtpServer(tls_context=server_tls(certificate), require_starttls=True, auth_required=True,
                    authenticator=authenticator) as server:
        run = make_run(tmp_path, notify_config={"smtp_host": "127.0.0.1", "smtp_port": server.port,
                                                "smtp_user": "ci", "to": ["dev@example.com"], "retries": 3,
                                                "backoff": 0.01, "ca_file": str(certificate[0])})
        done = run_cli(["--run", run.id, "--home", str(tmp_path)], {PASSWORD_ENV: wrong})
        with pytest.raises(NotifyError) as caught:  # in process too, where logging could leak it
            monkeypatch.setenv(PASSWORD_ENV, wrong)  # restored after the test, whatever was set before
            notify(run, config=run.record().config.notify)
    assert done.returncode == EXIT_NOTIFY, done.stderr
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("mlci: error: 'success' of run mnist_cnn-0123456789 not delivered by email: SMTP 127.0.0.1:")
    assert "refused the login of 'ci' (535" in line and PASSWORD_ENV in line
    assert "after 1 attempt" in line  # a wrong password is not retried: retries would lock the account
    import base64

    leaks = [wrong, base64.b64encode(wrong.encode()).decode(), base64.b64encode(f"\0ci\0{wrong}".encode()).decode()]
    for text in (done.stdout, done.stderr, caplog.text, str(caught.value),
                 *(p.read_text() for p in run.outbox.glob("*.json"))):
        assert not any(leak in text for leak in leaks)
    assert server.inbox.messages == []


def test_missing_password_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    run = make_run(tmp_path)
    with pytest.raises(NotifyError) as caught:
        notify(run, config=smtp_config(free_port(), smtp_user="ci"))
    assert f"smtp_user 'ci' is set but {PASSWORD_ENV} is not; export it" in str(caught.value)


def test_login_over_an_unencrypted_connection_to_another_host_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    run = make_run(tmp_path)
    # another host, as an address from TEST-NET-1 (RFC 5737): no name is resolved, and nothing answers there
    config = smtp_config(25, smtp_host="192.0.2.1", smtp_user="ci", security="none", retries=0, timeout=1)
    with pytest.raises(NotifyError) as caught:
        notify(run, config=config)
    assert 'smtp_user is set with security = "none": the password would cross the network in clear text' in str(
        caught.value)
    assert PASSWORD not in str(caught.value)


# ----------------------------------------------------------------------------- header injection


@pytest.mark.parametrize("key, value, expected", [
    ("to", ["dev@example.com\nBcc: victim@example.org"], "key 'notify.to' = "),
    ("cc", ["qa@example.com\r\nX-Evil: 1"], "key 'notify.cc' = "),
    ("from", "ci@example.com\r\nBcc: victim@example.org", "key 'notify.from' = "),
    ("smtp_host", "127.0.0.1\r\nRCPT TO:<victim@example.org>", "key 'notify.smtp_host' = "),
])
def test_line_breaks_in_addresses_and_header_values_are_rejected(key, value, expected):
    with pytest.raises(ConfigError) as caught:
        validate_config({"notify": {key: value}}, "mlci.toml")
    message = str(caught.value)
    assert message.startswith(f"mlci.toml: {expected}") and "inject" in message and "\n" not in message


def test_two_addresses_in_one_item_are_rejected():
    with pytest.raises(ConfigError, match=r"one mail address per list item such as 'dev@example.com', got 'a@x.org, b@y.org'"):
        validate_config({"notify": {"to": ["a@x.org, b@y.org"]}}, "mlci.toml")


def test_cli_config_with_injection_exits_2_with_one_line(tmp_path):
    run = make_run(tmp_path)
    config = tmp_path / "mlci.toml"
    config.write_text('[notify]\nsmtp_host = "127.0.0.1"\nto = ["dev@example.com\\nBcc: victim@example.org"]\n')
    result = CliRunner().invoke(main, ["notify", "--run", run.id, "--home", str(tmp_path), "--config", str(config)])
    assert result.exit_code == EXIT_USAGE
    assert f"mlci: error: {config}: key 'notify.to' = " in result.output and "inject mail headers" in result.output


def test_a_model_name_with_a_newline_cannot_add_headers(tmp_path):
    run = make_run(tmp_path, model_name="mnist\nBcc: victim@example.org")
    with SmtpServer() as server:
        notify(run, config=smtp_config(server.port))
    [got] = server.inbox.messages
    assert "victim@example.org" not in got["rcpt"] and "Bcc" not in got["message"]
    assert got["message"]["subject"] == "✅ mnist Bcc: victim@example.org reached accuracy 0.973 ≥ 0.97 in 3 trials"


# ----------------------------------------------------------------------------- webhook


def test_webhook_posts_the_facts_with_a_slack_text_field_once(tmp_path):
    run = make_run(tmp_path, status="exhausted", values=(0.71, 0.78), threshold=0.8)
    with WebhookServer() as hook:
        config = NotifyConfig(webhook_url=hook.url, retries=1, backoff=0.01)
        lines: list[str] = []
        notify(run, config=config, echo=lines.append)
        notify(run, config=config)
    [request] = hook.requests
    body = request["json"]
    assert request["path"] == "/hooks/T000/SECRETPATH"
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert request["headers"]["Idempotency-Key"] == outbox_message(run, "budget-exhausted")["message_id"]
    assert body["text"].startswith("❌ mnist_cnn did not reach accuracy 0.8: best 0.78 after 2 trials (budget spent)")
    assert body["event"] == "budget-exhausted" and body["met"] is False
    assert body["best_value"] == 0.78 and body["best_trial"] == 1 and body["threshold"] == 0.8
    assert body["best_hparams"] == {"epochs": 3, "units": 64}
    assert [row["value"] for row in body["trials"]] == [0.71, 0.78]
    assert body["commit"].startswith("a1b2c3d4") and body["run_id"] == "mnist_cnn-0123456789"
    # the URL's path is the secret of a Slack webhook: never echoed
    assert all("SECRETPATH" not in line for line in lines) and any("sent" in line for line in lines)


def test_webhook_5xx_is_retried_and_4xx_is_not(tmp_path):
    run = make_run(tmp_path)
    with WebhookServer(statuses=[503]) as hook:
        result = notify(run, config=NotifyConfig(webhook_url=hook.url, retries=2, backoff=0.01))
    assert len(hook.requests) == 2 and result.ok
    delivery = outbox_message(run)["deliveries"]["webhook"]
    assert delivery["attempts"] == 2 and delivery["last_error"] is None  # delivered: the 503 is history

    other = make_run(tmp_path / "other")
    with WebhookServer(statuses=[404, 404, 404]) as hook:
        with pytest.raises(NotifyError) as caught:
            notify(other, config=NotifyConfig(webhook_url=hook.url, retries=2, backoff=0.01))
    assert len(hook.requests) == 1
    assert "not delivered by webhook: webhook http://127.0.0.1:" in str(caught.value)
    assert "answered HTTP 404" in str(caught.value) and "SECRETPATH" not in str(caught.value)


def test_email_down_and_webhook_up_flush_sends_only_the_email(tmp_path):
    run = make_run(tmp_path)
    port = free_port()
    with WebhookServer() as hook:
        config = smtp_config(port, retries=0).model_copy(update={"webhook_url": hook.url})
        with pytest.raises(NotifyError, match="not delivered by email"):
            notify(run, config=config)
        assert len(hook.requests) == 1
        with SmtpServer(port=port) as server:
            flush(RunStore(tmp_path), config=config)
        assert len(hook.requests) == 1 and len(server.inbox.messages) == 1


# ----------------------------------------------------------------------------- events, console, CLI


def test_without_notify_config_the_outbox_and_console_only_said_once(tmp_path):
    run = make_run(tmp_path)
    lines: list[str] = []
    result = notify(run, config=NotifyConfig(), echo=lines.append)
    assert sum("no channel in [notify]" in line for line in lines) == 1
    assert any("✅ mnist_cnn reached accuracy 0.973 ≥ 0.97 in 3 trials" in line for line in lines)
    assert result.console_only == ["mnist_cnn-0123456789/success"] and result.ok
    assert outbox_message(run)["deliveries"] == {}
    lines.clear()
    notify(run, config=NotifyConfig(), echo=lines.append)
    assert lines == [f"notify: 'success' of run mnist_cnn-0123456789 was already written to "
                     f"{run.outbox / 'success.json'} with no channel configured; add one to [notify] to send it"]
    with WebhookServer() as hook:  # a channel configured later gets the same message, once
        notify(run, config=NotifyConfig(webhook_url=hook.url))
        notify(run, config=NotifyConfig(webhook_url=hook.url))
    assert len(hook.requests) == 1 and hook.requests[0]["json"]["notification"] == "success"


def test_event_follows_the_run_status(tmp_path):
    run = make_run(tmp_path, status="running")
    with pytest.raises(UsageError, match="run mnist_cnn-0123456789 has status 'running': nothing to announce yet"):
        notify(run, config=NotifyConfig())
    run.update(status="failed", message="the training image crashed\nTraceback ...")
    notify(run, config=NotifyConfig())
    assert outbox_message(run, "pipeline-error")["subject"] == (
        "❌ mnist_cnn: pipeline error (the training image crashed Traceback ...)")


def test_success_is_refused_when_the_threshold_was_not_met(tmp_path):
    run = make_run(tmp_path, status="exhausted", values=(0.71,), threshold=0.8)
    with pytest.raises(UsageError) as caught:
        notify(run, "success", config=NotifyConfig())
    assert "has not met the threshold: best accuracy 0.71 vs 0.8" in str(caught.value)
    assert "--event budget-exhausted" in str(caught.value)


def test_each_failed_trial_is_its_own_message(tmp_path):
    run = make_run(tmp_path, status="running", failed_trial=True)
    with SmtpServer() as server:
        notify(run, "trial-failed", config=smtp_config(server.port))
        notify(run, "trial-failed", config=smtp_config(server.port))
    [got] = server.inbox.messages
    assert got["message"]["subject"] == "⚠️ mnist_cnn: trial 3 failed (build_model raised ValueError)"
    assert (run.outbox / "trial-failed-3.json").is_file()


def test_cli_uses_the_config_stored_with_the_run_and_exits_8_then_0(tmp_path):
    port = free_port()
    run = make_run(tmp_path, notify_config={"smtp_host": "127.0.0.1", "smtp_port": port, "security": "none",
                                            "to": ["dev@example.com"], "retries": 1, "backoff": 0.01})
    runner = CliRunner()
    down = runner.invoke(main, ["notify", "--run", run.id, "--home", str(tmp_path)])
    assert down.exit_code == EXIT_NOTIFY
    assert f"kept in {run.outbox / 'success.json'}; send it later with `mlci notify --flush" in down.output
    with SmtpServer(port=port) as server:
        up = runner.invoke(main, ["notify", "--flush", "--home", str(tmp_path)])
        assert up.exit_code == 0, up.output
        again = runner.invoke(main, ["notify", "--run", run.id, "--home", str(tmp_path)])
        assert again.exit_code == 0 and "already sent" in again.output
    assert len(server.inbox.messages) == 1


def test_cli_usage_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["notify", "--home", str(tmp_path)])
    assert missing.exit_code == EXIT_USAGE and "pass --run ID (or --flush" in missing.output
    unknown = runner.invoke(main, ["notify", "--run", "nope", "--home", str(tmp_path)])
    assert unknown.exit_code == EXIT_USAGE and "run 'nope' not found" in unknown.output
    both = runner.invoke(main, ["notify", "--flush", "--event", "success", "--home", str(tmp_path)])
    assert both.exit_code == EXIT_USAGE and "takes no --event" in both.output


def test_a_value_just_below_the_threshold_never_prints_as_the_threshold(tmp_path):
    run = make_run(tmp_path, status="exhausted", values=(0.9699,), threshold=0.97, plot=False)
    notify(run, config=NotifyConfig())
    stored = outbox_message(run, "budget-exhausted")
    assert stored["subject"] == "❌ mnist_cnn did not reach accuracy 0.97: best 0.9699 after 1 trial (budget spent)"
    assert stored["attachment"] is None  # no report.png: no attachment, and no error


def test_if_ended_announces_an_ended_run_and_leaves_a_running_one_alone(tmp_path):
    """Job 3 calls `mlci notify --if-ended` after a failed trial: only a run the oracle ended is announced."""
    running = make_run(tmp_path / "a", status="running")
    done = run_cli(["--run", running.id, "--home", str(tmp_path / "a"), "--if-ended"], {})
    assert done.returncode == 0 and done.stdout == ""
    assert f"notify: run {running.id} has not ended (running); nothing to announce" in done.stderr
    assert not list(running.outbox.glob("*.json"))
    ended = make_run(tmp_path / "b", status="met")
    done = run_cli(["--run", ended.id, "--home", str(tmp_path / "b"), "--if-ended"], {})
    assert done.returncode == 0 and done.stdout.startswith("OUTBOX="), done.stderr
    assert [p.name for p in ended.outbox.glob("*.json")] == ["success.json"]
    assert (ended.dir / "report.html").exists()  # every announcement comes with the report
    refused = run_cli(["--run", ended.id, "--home", str(tmp_path / "b"), "--if-ended", "--event", "success"], {})
    assert refused.returncode == 2 and "--if-ended announces the event the run ended with" in refused.stderr


# ----------------------------------------------------------------------------- what the mutation score found untested


def test_each_retry_says_its_delay_doubling_and_which_attempt_comes(tmp_path):
    run = make_run(tmp_path, plot=False)
    lines: list[str] = []
    with pytest.raises(NotifyError):
        notify(run, config=smtp_config(free_port(), retries=2, backoff=0.01), echo=lines.append)
    retries = [line.split("; ")[-1] for line in lines if "retrying" in line]
    assert retries == ["retrying in 0.01s (attempt 2 of 3)", "retrying in 0.02s (attempt 3 of 3)"]


def test_a_notify_waiting_too_long_for_the_outbox_lock_gives_up_and_sends_nothing(tmp_path, monkeypatch):
    import mlci.integrations.notify as notifying
    from mlci.core.store import file_lock

    monkeypatch.setattr(notifying, "LOCK_WAIT", 0.4)  # 300 s in use: the other sender is stuck, not slow
    run = make_run(tmp_path, plot=False)
    with WebhookServer() as hook:
        with file_lock(run.outbox / ".lock", timeout=0, busy=RuntimeError("held")):  # another mlci notify
            with pytest.raises(NotifyError) as caught:
                notify(run, config=NotifyConfig(webhook_url=hook.url))
        assert hook.requests == []
    assert caught.value.one_line() == (f"{run.outbox} is locked by another mlci notify for 0s; wait for it, then run "
                                       "`mlci notify --flush`")
    assert not (run.outbox / "success.json").exists()


def test_two_channels_failing_are_one_line_naming_the_first_and_counting_the_other(tmp_path):
    run = make_run(tmp_path, plot=False)
    with WebhookServer(statuses=[404]) as hook:
        config = smtp_config(free_port(), retries=0).model_copy(update={"webhook_url": hook.url})
        with pytest.raises(NotifyError) as caught:
            notify(run, config=config)
    line = caught.value.one_line()
    assert line.startswith("'success' of run mnist_cnn-0123456789 not delivered by email: SMTP 127.0.0.1:")
    assert "unreachable (Connection refused) (after 1 attempt); kept in " in line
    assert "(and 1 more); send it later with `mlci notify --flush --run mnist_cnn-0123456789`" in line
    assert "\n" not in line


def test_an_event_already_sent_says_when_and_by_which_channel(tmp_path):
    run = make_run(tmp_path, plot=False)
    lines: list[str] = []
    with WebhookServer() as hook:
        notify(run, config=NotifyConfig(webhook_url=hook.url))
        again = notify(run, config=NotifyConfig(webhook_url=hook.url), echo=lines.append)
    sent_at = outbox_message(run)["deliveries"]["webhook"]["sent_at"]
    assert lines == [f"notify: 'success' of run mnist_cnn-0123456789 was already sent (webhook at {sent_at}); "
                     "not sending it again"]
    assert again.already_sent == ["mnist_cnn-0123456789/success"] and again.ok and again.sent == []
    assert again.messages == [run.outbox / "success.json"]


def test_a_flush_with_nothing_pending_says_so(tmp_path):
    run = make_run(tmp_path, plot=False)
    lines: list[str] = []
    notify(run, config=NotifyConfig())  # written, no channel: nothing to send
    result = flush(RunStore(tmp_path), config=NotifyConfig(), echo=lines.append)
    assert lines == ["notify: nothing pending in the outbox"] and result.ok and result.sent == []


def test_an_unknown_event_or_a_trial_without_trial_failed_is_refused_before_anything_is_written(tmp_path):
    run = make_run(tmp_path, plot=False)
    with pytest.raises(UsageError) as unknown:
        notify(run, "party", config=NotifyConfig())
    assert unknown.value.one_line() == ("unknown event 'party'; use one of success, budget-exhausted, trial-failed, "
                                        "pipeline-error")
    with pytest.raises(UsageError) as trial:
        notify(run, "success", config=NotifyConfig(), trial=1)
    assert trial.value.one_line() == "--trial goes with --event trial-failed only"
    assert not run.outbox.exists()


def test_the_message_is_in_the_outbox_before_the_webhook_is_called(tmp_path):
    """A crash during the POST leaves the message to flush: it is on disk, pending, before any byte goes."""
    run = make_run(tmp_path, plot=False)

    def outbox():
        path = run.outbox / "success.json"
        return json.loads(path.read_text())["deliveries"] if path.exists() else None

    with WebhookServer(look=outbox) as hook:
        notify(run, config=NotifyConfig(webhook_url=hook.url))
    assert [request["seen"] for request in hook.requests] == [{"webhook": {
        "status": "pending", "attempts": 0, "last_error": None, "sent_at": None, "sent_to": None, "stage": None,
        "stage_at": None, "message_id": None}}]


def test_a_lost_reply_is_one_line_and_the_message_is_sent_again_only_when_asked(tmp_path):
    run = make_run(tmp_path, plot=False)
    path = run.outbox / "success.json"
    lines: list[str] = []
    with SmtpServer(inbox=LostReply(lose=1)) as server:
        config = smtp_config(server.port, retries=2)
        with pytest.raises(NotifyError) as lost:
            notify(run, config=config, echo=lines.append)
        stored = outbox_message(run)
        delivery = stored["deliveries"]["email"]
        assert (delivery["status"], delivery["attempts"], len(server.inbox.messages)) == ("unconfirmed", 1, 1)
        hint = f"`mlci notify --flush --resend-unconfirmed --run {run.id}`; kept in {path}"
        assert lost.value.one_line() == (
            f"'success' of run {run.id} by email: the message went to the server but its reply was lost "
            f"({delivery['last_error']}); it is probably delivered and is not sent again (Message-ID "
            f"{stored['message_id']}); if it never arrives: {hint}; send it later with `mlci notify --flush --run "
            f"{run.id}`")
        assert lines[-1] == f"notify: email: delivery unconfirmed, not resent: {path}"

        lines.clear()
        assert flush(run, config=config, echo=lines.append).ok  # not resent unless asked
        assert len(server.inbox.messages) == 1
        assert lines == [f"notify: 'success' of run {run.id} by email is unconfirmed (sent at {delivery['stage_at']}, "
                         "reply lost): not sent again; --resend-unconfirmed sends it anew",
                         "notify: nothing pending in the outbox"]

        lines.clear()
        assert notify(run, config=config, echo=lines.append).already_sent == [f"{run.id}/success"]
        assert lines == [f"notify: 'success' of run {run.id} was already sent (email unconfirmed at "
                         f"{delivery['stage_at']} (--flush --resend-unconfirmed sends it anew)); not sending it again"]

        # a process stopped after the message went and before its reply: on disk at data-sent, still pending
        stopped = {**stored, "deliveries": {"email": {**delivery, "status": "pending", "last_error": None}}}
        path.write_text(json.dumps(stopped))
        with pytest.raises(NotifyError, match=r"'success' of run mnist_cnn-0123456789 by email: the message went to the "
                                              r"server but its reply was lost \(the process stopped\); it is probably"):
            notify(run, config=config)
        assert len(server.inbox.messages) == 1 and outbox_message(run)["deliveries"]["email"]["status"] == "unconfirmed"

        lines.clear()
        result = flush(run, config=config, resend_unconfirmed=True, echo=lines.append)
    assert result.ok and len(result.sent) == 1 and len(server.inbox.messages) == 2
    delivery = outbox_message(run)["deliveries"]["email"]
    assert delivery["status"] == "sent"
    assert lines == [f"notify: email: sent '{stored['subject']}' to {delivery['sent_to']}"]  # and nothing else
    assert server.inbox.messages[1]["message"]["Message-ID"] == stored["message_id"]  # the same message, again


def test_without_a_channel_mlci_run_gets_one_line_and_mlci_notify_the_whole_message(tmp_path):
    run = make_run(tmp_path / "a", plot=False)
    lines: list[str] = []
    notify(run, config=NotifyConfig(), echo=lines.append, full_text=False)  # `mlci run` printed its summary
    subject = outbox_message(run)["subject"]
    assert lines == [f"notify: no channel in [notify] (smtp_host, webhook_url): '{subject}' kept in "
                     f"{run.outbox / 'success.json'}"]
    other = make_run(tmp_path / "b", plot=False)
    lines.clear()
    notify(other, config=NotifyConfig(), echo=lines.append)
    text = outbox_message(other)["text"]
    assert lines == ["notify: no channel in [notify] (smtp_host, webhook_url): the message stays in the outbox and "
                     "is shown here only", *(f"  {line}" for line in text.splitlines())]


def test_a_store_wide_flush_passes_runs_without_an_outbox_and_damaged_ones(tmp_path):
    run = make_run(tmp_path, plot=False)
    with pytest.raises(NotifyError):  # the hook is down: the message stays pending
        notify(run, config=NotifyConfig(webhook_url=f"http://127.0.0.1:{free_port()}/x", retries=0))
    store = RunStore(tmp_path)
    quiet, broken = (store.open_run(RunRecord(run_id=run_id, model_name="other", model_file=str(tmp_path / "o.py"),
                                              source_dir=str(tmp_path), content_hash="d" * 64, status="met"))
                     for run_id in ("a-quiet-run", "b-broken-run"))
    for age, older in enumerate((quiet, broken)):  # listed before the run with the pending message
        os.utime(older.record_path, (1_000_000 + age, 1_000_000 + age))
    broken.outbox.mkdir()
    (broken.outbox / "success.json").write_text("[]")
    lines: list[str] = []
    with WebhookServer() as hook:
        with pytest.raises(NotifyError) as caught:
            flush(store, config=NotifyConfig(webhook_url=hook.url), echo=lines.append)
    assert [request["json"]["run_id"] for request in hook.requests] == [run.id]
    damage = (f"{broken.outbox / 'success.json'}: outbox message must be a JSON object; delete it and run "
              "`mlci notify` again to write it anew")
    assert f"notify: run b-broken-run skipped: {damage}" in lines
    assert caught.value.one_line() == f"{damage}; send it later with `mlci notify --flush`"
    with pytest.raises(NotifyError) as one:  # one run asked for: its damage is the error itself
        flush(broken, config=NotifyConfig(webhook_url=hook.url))
    assert one.value.one_line() == damage


def test_an_email_added_after_the_webhook_and_left_unconfirmed_is_resent_when_asked(tmp_path):
    run = make_run(tmp_path, plot=False)
    with WebhookServer() as hook, SmtpServer(inbox=LostReply(lose=1)) as server:
        notify(run, config=NotifyConfig(webhook_url=hook.url))  # the webhook first: it comes first in the record
        both = smtp_config(server.port).model_copy(update={"webhook_url": hook.url})
        with pytest.raises(NotifyError, match="reply was lost"):
            notify(run, config=both)
        assert list(outbox_message(run)["deliveries"]) == ["webhook", "email"]
        flush(run, config=both, resend_unconfirmed=True)
    assert len(hook.requests) == 1 and len(server.inbox.messages) == 2
    assert {name: d["status"] for name, d in outbox_message(run)["deliveries"].items()} == {"webhook": "sent",
                                                                                          "email": "sent"}


def test_a_flush_sends_every_pending_message_of_a_run_past_those_already_sent(tmp_path):
    run = make_run(tmp_path, plot=False, failed_trial=True)
    with WebhookServer() as hook:
        notify(run, "success", config=NotifyConfig(webhook_url=hook.url))  # success.json: sent
        down = NotifyConfig(webhook_url=f"http://127.0.0.1:{free_port()}/x", retries=0)
        with pytest.raises(NotifyError):
            notify(run, "trial-failed", config=down)  # trial-failed-3.json, after it: pending
        result = flush(run, config=NotifyConfig(webhook_url=hook.url))
    assert [request["json"]["notification"] for request in hook.requests] == ["success", "trial-failed-3"]
    assert result.sent == [f"{run.id}/trial-failed-3 by webhook to {hook.url.split('/hooks')[0]} (HTTP 200)"]


def test_a_flush_sends_a_message_only_by_the_channels_it_was_written_for(tmp_path):
    """`--flush` sends what is pending; a channel configured after the event does not get it from a flush."""
    run = make_run(tmp_path, plot=False)
    port = free_port()
    with pytest.raises(NotifyError):
        notify(run, config=smtp_config(port, retries=0))
    with SmtpServer(port=port) as server, WebhookServer() as hook:
        flush(run, config=smtp_config(port).model_copy(update={"webhook_url": hook.url}))
    assert len(server.inbox.messages) == 1 and hook.requests == []
    assert list(outbox_message(run)["deliveries"]) == ["email"]


def test_an_announcement_without_a_channel_shows_the_whole_message(tmp_path):
    """What `mlci notify` does (announce, full text); `mlci run` asks for one line, having shown its summary."""
    from mlci.integrations.notify import announce

    run = make_run(tmp_path / "a", plot=False)
    lines: list[str] = []
    announce(run, NotifyConfig(), echo=lines.append)
    assert all(f"  {line}" in lines for line in outbox_message(run)["text"].splitlines())
    quiet = make_run(tmp_path / "b", plot=False)
    lines.clear()
    announce(quiet, NotifyConfig(), echo=lines.append, full_text=False)
    assert [line for line in lines if line.startswith("notify:")] == [
        f"notify: no channel in [notify] (smtp_host, webhook_url): '{outbox_message(quiet)['subject']}' kept in "
        f"{quiet.outbox / 'success.json'}"]


def test_an_announcement_rewrites_the_report_and_a_report_that_cannot_be_written_never_hides_the_outcome(tmp_path):
    from mlci.integrations.notify import announce

    run = make_run(tmp_path, status="exhausted", values=(0.71,), threshold=0.8, plot=False)
    assert announce(run, NotifyConfig(), send=False, event="success") is None  # only the report: nothing refused
    assert (run.dir / "report.html").is_file() and not run.outbox.exists()
    (run.dir / "report.html").unlink()
    (run.dir / "report.html").mkdir()  # a folder where the report belongs
    lines: list[str] = []
    result = announce(run, NotifyConfig(), echo=lines.append)
    assert lines[0].startswith("warning: the report could not be written (IsADirectoryError: ")
    assert result.console_only == [f"{run.id}/budget-exhausted"]


def test_a_running_run_is_announced_only_for_an_event_named(tmp_path):
    from mlci.integrations.notify import announce

    run = make_run(tmp_path, status="running", failed_trial=True, plot=False)
    with pytest.raises(UsageError) as running:
        announce(run, NotifyConfig())
    assert running.value.one_line() == (f"run {run.id} has not ended (status running): nothing to announce yet; pass "
                                        "--event (success|budget-exhausted|trial-failed|pipeline-error) to say which")
    assert not run.outbox.exists()
    assert announce(run, NotifyConfig(), event="trial-failed").console_only == [f"{run.id}/trial-failed-3"]


def test_the_stage_data_sent_is_on_disk_before_the_email_goes_and_a_later_channel_before_it_is_called(tmp_path):
    """A crash while the bytes go leaves a record that says so (data-sent: not resent blindly); a channel added
    to a message already in the outbox is written there, pending, before it is called."""
    run = make_run(tmp_path, plot=False)

    def delivery(name):
        path = run.outbox / "success.json"
        found = json.loads(path.read_text())["deliveries"].get(name) if path.exists() else None
        return found and {key: found[key] for key in ("status", "stage")}

    with SmtpServer(inbox=Looking(lambda: delivery("email"))) as server:
        notify(run, config=smtp_config(server.port))
    assert server.inbox.seen == [{"status": "pending", "stage": "data-sent"}]
    with WebhookServer(look=lambda: delivery("webhook")) as hook:
        notify(run, config=NotifyConfig(webhook_url=hook.url))
    assert [request["seen"] for request in hook.requests] == [{"status": "pending", "stage": None}]


def test_a_flush_with_a_config_that_lacks_a_pending_channel_keeps_the_message_and_says_why(tmp_path):
    run = make_run(tmp_path, plot=False)
    down = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(NotifyError):  # email and webhook both down: both pending
        notify(run, config=smtp_config(free_port(), retries=0).model_copy(update={"webhook_url": down}))
    with WebhookServer() as hook, pytest.raises(NotifyError) as caught:
        flush(run, config=NotifyConfig(webhook_url=hook.url))  # the email is not configured: the webhook still goes
    assert len(hook.requests) == 1
    assert caught.value.one_line() == (
        f"{run.id}/success: email is pending but the [notify] config in use does not configure email; kept in "
        f"{run.outbox / 'success.json'}; send it later with `mlci notify --flush --run {run.id}`")
    assert outbox_message(run)["deliveries"]["email"]["status"] == "pending"


def test_a_flush_without_a_config_sends_by_the_notify_config_stored_with_each_run(tmp_path):
    with WebhookServer() as hook:
        run = make_run(tmp_path, plot=False, notify_config={"webhook_url": hook.url, "retries": 0})
        with pytest.raises(NotifyError):  # sent once with a config whose hook was down: pending
            notify(run, config=NotifyConfig(webhook_url=f"http://127.0.0.1:{free_port()}/x", retries=0))
        assert flush(run).ok and flush(RunStore(tmp_path)).ok
    assert [request["json"]["run_id"] for request in hook.requests] == [run.id]


def test_an_untrue_event_is_refused_before_the_report_is_rewritten(tmp_path):
    from mlci.integrations.notify import announce

    run = make_run(tmp_path, status="exhausted", values=(0.71,), threshold=0.8, plot=False, failed_trial=True)
    for event, trial in (("success", None), ("trial-failed", 0)):  # not met; trial 0 succeeded
        with pytest.raises(UsageError):
            announce(run, NotifyConfig(), event=event, trial=trial)
        assert not (run.dir / "report.html").exists() and not run.outbox.exists()


def test_an_announcement_that_cannot_be_delivered_fails_unless_asked_to_warn(tmp_path):
    """`mlci notify` exits 8; `mlci run` (warn_only) says it in a line: the run's own outcome matters more."""
    from mlci.integrations.notify import announce

    run = make_run(tmp_path, plot=False)
    down = NotifyConfig(webhook_url=f"http://127.0.0.1:{free_port()}/x", retries=0)
    with pytest.raises(NotifyError) as failed:
        announce(run, down)
    lines: list[str] = []
    assert announce(run, down, echo=lines.append, warn_only=True) is None
    assert lines[-1] == f"warning: {failed.value.one_line()}"


def test_an_announcement_says_that_the_tracking_server_cannot_be_reached(tmp_path):
    """The report goes to MLflow with the announcement; a server that does not answer is a warning line."""
    from mlci.integrations.notify import announce

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = make_run(tmp_path, plot=False)
    run.update(config={**run.record().config.model_dump(by_alias=True), "tracking": {"mlflow_uri": uri}})
    lines: list[str] = []
    announce(run, NotifyConfig(), echo=lines.append)
    assert any(line.startswith(f"warning: MLflow at {uri} could not be reached after 3 attempts") for line in lines)


def test_an_announcement_of_a_failed_trial_names_the_trial_asked_for(tmp_path):
    from mlci.integrations.notify import announce

    run = make_run(tmp_path, status="running", failed_trial=True, plot=False)  # trial 3 failed
    later = run.new_trial()  # and trial 4, after it
    later.write_hparams(HparamsRecord(trial=later.number, hparams={"epochs": 1}))
    later.update_state(status="failed", reason="out of memory", exit_code=137)
    announce(run, NotifyConfig(), event="trial-failed", trial=3)
    assert sorted(p.name for p in run.outbox.glob("*.json")) == ["trial-failed-3.json"]
    assert outbox_message(run, "trial-failed-3")["subject"] == "⚠️ mnist_cnn: trial 3 failed (build_model raised ValueError)"


@pytest.mark.parametrize("status", ["running", "interrupted"])
def test_a_run_that_has_not_ended_is_not_announced_even_with_a_reason_on_record(tmp_path, status):
    """A reason left in run.json (a run reopened, a file from another mlci) never announces a run still going."""
    run = make_run(tmp_path, status="met", plot=False)
    run.update(status=status, reason="met")
    with pytest.raises(UsageError) as caught:
        notify(run, config=NotifyConfig())
    assert caught.value.one_line() == (f"run {run.id} has status '{status}': nothing to announce yet; pass --event "
                                       "(success|budget-exhausted|trial-failed|pipeline-error) to say which")
    assert not run.outbox.exists()


def test_a_delivery_left_at_data_sent_does_not_hold_back_the_next_channel(tmp_path):
    run = make_run(tmp_path, plot=False)
    port = free_port()
    with WebhookServer(statuses=[503]) as hook:
        both = smtp_config(port, retries=0).model_copy(update={"webhook_url": hook.url, "retries": 0})
        with pytest.raises(NotifyError):  # both fail: both pending
            notify(run, config=both)
        stored = outbox_message(run)
        stored["deliveries"]["email"].update(stage="data-sent")  # a process stopped after the email's bytes went
        (run.outbox / "success.json").write_text(json.dumps(stored))
        with pytest.raises(NotifyError, match="reply was lost"):
            notify(run, config=both)
    assert len(hook.requests) == 2 and outbox_message(run)["deliveries"]["webhook"]["status"] == "sent"


def test_a_lost_email_reply_does_not_hold_back_the_webhook(tmp_path):
    run = make_run(tmp_path, plot=False)
    with WebhookServer() as hook, SmtpServer(inbox=LostReply(lose=1)) as server:
        with pytest.raises(NotifyError, match="reply was lost"):
            notify(run, config=smtp_config(server.port).model_copy(update={"webhook_url": hook.url}))
    assert len(server.inbox.messages) == 1 and len(hook.requests) == 1
    assert {name: d["status"] for name, d in outbox_message(run)["deliveries"].items()} == {"email": "unconfirmed",
                                                                                          "webhook": "sent"}


def test_an_event_sent_by_two_channels_names_both_when_asked_again(tmp_path):
    run = make_run(tmp_path, plot=False)
    lines: list[str] = []
    with WebhookServer() as hook, SmtpServer() as server:
        both = smtp_config(server.port).model_copy(update={"webhook_url": hook.url})
        notify(run, config=both)
        notify(run, config=both, echo=lines.append)
    sent = {name: d["sent_at"] for name, d in outbox_message(run)["deliveries"].items()}
    assert lines == [f"notify: 'success' of run {run.id} was already sent (email at {sent['email']}, webhook at "
                     f"{sent['webhook']}); not sending it again"]
