"""Hostile notify and Jenkins settings, and a real SMTP server (aiosmtpd) that loses its reply to DATA.

Each case: its exit code, one line with no traceback and no secret, and the store's other runs untouched.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from hostile_kit import RUN_ID, Untouched, assert_refused, cli, make_store, write_model
from mlci.core.store import RunStore
from conftest import free_port

SECRET = "s3cr3t-T0KEN-value"


class LostReply:
    """aiosmtpd handler that stores each message, then drops the connection before replying to DATA:
    the client cannot know the message was kept (the "lost DATA reply" server)."""

    def __init__(self, lose: int = 10**6):
        self.messages: list[bytes] = []
        self.lose = lose  # how many replies to lose; later ones are sent

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        if len(self.messages) <= self.lose:
            server.transport.abort()
        return "250 OK"


class Smtp:
    def __init__(self, handler):
        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def smtp_notify(port: int) -> dict:
    return {"smtp_host": "127.0.0.1", "smtp_port": port, "security": "none", "from": "ci@example.com",
            "to": ["dev@example.com"], "retries": 3, "backoff": 0.01, "timeout": 5}


@pytest.fixture
def user(tmp_path) -> Path:
    return write_model(tmp_path / "user")


# ----------------------------------------------------------------------------- at most once


def test_a_lost_reply_to_data_delivers_once_not_four_times(tmp_path, user):
    handler = LostReply()
    with Smtp(handler) as server:
        run = make_store(tmp_path / "store", user, notify=smtp_notify(server.port))
        said = cli("notify", "--run", RUN_ID, "--home", tmp_path / "store")
        assert_refused(said, 8, "reply was lost", "not sent again")
        assert len(handler.messages) == 1
        entry = json.loads((run.outbox / "budget-exhausted.json").read_text())
        delivery = entry["deliveries"]["email"]
        assert delivery["status"] == "unconfirmed" and delivery["stage"] == "data-sent"
        assert delivery["message_id"] == entry["message_id"]
        # a later flush decides from the record: not sent again, nothing pending
        flushed = cli("notify", "--flush", "--home", tmp_path / "store")
        assert flushed.code == 0, flushed.stderr
        assert "unconfirmed" in flushed.stderr
        again = cli("notify", "--run", RUN_ID, "--home", tmp_path / "store")
        assert again.code == 0 and "unconfirmed" in again.stderr
    assert len(handler.messages) == 1


def test_resend_unconfirmed_sends_it_once_more_when_asked(tmp_path, user):
    handler = LostReply(lose=1)
    with Smtp(handler) as server:
        run = make_store(tmp_path / "store", user, notify=smtp_notify(server.port))
        assert cli("notify", "--run", RUN_ID, "--home", tmp_path / "store").code == 8
        said = cli("notify", "--flush", "--resend-unconfirmed", "--home", tmp_path / "store")
        assert said.code == 0, said.stderr
        assert cli("notify", "--flush", "--resend-unconfirmed", "--home", tmp_path / "store").code == 0
    assert len(handler.messages) == 2
    assert json.loads((run.outbox / "budget-exhausted.json").read_text())["deliveries"]["email"]["status"] == "sent"


def test_a_process_stopped_after_data_is_not_resent_by_flush(tmp_path, user):
    """A crash between sending the message and reading the reply leaves stage data-sent: flush does not resend."""
    from aiosmtpd.handlers import Sink

    handler = LostReply(lose=0)
    with Smtp(handler) as server:
        run = make_store(tmp_path / "store", user, notify=smtp_notify(server.port))
        with Smtp(Sink()) as down:
            down_port = down.port
        # the message as a crashed mlci left it: written, sent up to DATA, no reply read (stage data-sent)
        from mlci.core.config import NotifyConfig
        from mlci.core.errors import NotifyError
        from mlci.integrations.notify import notify as notify_run

        with pytest.raises(NotifyError):
            notify_run(run, config=NotifyConfig.model_validate({**smtp_notify(down_port), "retries": 0}))
        path = run.outbox / "budget-exhausted.json"
        entry = json.loads(path.read_text())
        entry["deliveries"]["email"].update(stage="data-sent", status="pending")
        path.write_text(json.dumps(entry))
        said = cli("notify", "--flush", "--home", tmp_path / "store")
        assert_refused(said, 8, "reply was lost")
    assert handler.messages == []


def test_a_server_that_refuses_data_is_retried_and_delivered_once(tmp_path, user):
    """A definite 4xx to DATA means not kept: a retry is safe and happens."""

    class Busy:
        def __init__(self):
            self.calls, self.kept = 0, []

        async def handle_DATA(self, server, session, envelope):
            self.calls += 1
            if self.calls == 1:
                return "451 try again later"
            self.kept.append(envelope.content)
            return "250 OK"

    handler = Busy()
    with Smtp(handler) as server:
        make_store(tmp_path / "store", user, notify=smtp_notify(server.port))
        said = cli("notify", "--run", RUN_ID, "--home", tmp_path / "store")
    assert said.code == 0, said.stderr
    assert handler.calls == 2 and len(handler.kept) == 1


# ----------------------------------------------------------------------------- events that never happened


def test_trial_failed_is_refused_when_no_trial_failed(tmp_path, user):
    make_store(tmp_path / "store", user)
    with Untouched(tmp_path / "store"):
        said = cli("notify", "--run", RUN_ID, "--event", "trial-failed", "--home", tmp_path / "store")
    assert_refused(said, 2, "no failed trial")


def test_trial_failed_for_a_trial_that_succeeded_is_refused(tmp_path, user):
    make_store(tmp_path / "store", user)
    with Untouched(tmp_path / "store"):
        said = cli("notify", "--run", RUN_ID, "--event", "trial-failed", "--trial", "1", "--home",
                   tmp_path / "store")
    assert_refused(said, 2, "trial 1", "has not failed")


def test_trial_failed_for_a_missing_trial_is_refused(tmp_path, user):
    make_store(tmp_path / "store", user)
    with Untouched(tmp_path / "store"):
        said = cli("notify", "--run", RUN_ID, "--event", "trial-failed", "--trial", "7", "--home",
                   tmp_path / "store")
    assert_refused(said, 2, "no trial 7")


def test_success_is_refused_below_the_threshold(tmp_path, user):
    make_store(tmp_path / "store", user)
    with Untouched(tmp_path / "store"):
        said = cli("notify", "--run", RUN_ID, "--event", "success", "--home", tmp_path / "store")
    assert_refused(said, 2, "success")


# ----------------------------------------------------------------------------- store-wide flush


class Webhook:
    def __init__(self):
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


@pytest.mark.parametrize("damage", ["run.json", "outbox message", "config"])
def test_one_damaged_run_does_not_stop_flush_for_the_healthy_ones(tmp_path, user, damage):
    with Webhook() as hook:
        healthy = make_store(tmp_path / "store", user, notify={"webhook_url": hook.url})
        broken = make_store(tmp_path / "store", user, run_id="broken-0000000000", notify={"webhook_url": hook.url})
        down = {"webhook_url": "http://127.0.0.1:9/x", "retries": 0}
        for run in (healthy, broken):  # both leave a pending message (the hook was down)
            record = run.record()
            run.update(config={**record.config.model_dump(by_alias=True), "notify": down})
            assert cli("notify", "--run", run.id, "--home", tmp_path / "store").code == 8
            run.update(config=record.config.model_dump(by_alias=True))
        if damage == "run.json":
            broken.record_path.write_text("{")
        elif damage == "outbox message":
            (broken.outbox / "budget-exhausted.json").write_text("[")
        else:
            data = json.loads(broken.record_path.read_text())
            data["config"]["notify"]["webhook_url"] = "http://[::1"
            broken.record_path.write_text(json.dumps(data))
        kept = {path: path.read_bytes() for path in broken.dir.rglob("*.json")}
        said = cli("notify", "--flush", "--home", tmp_path / "store")
    assert_refused(said, 8, "broken-0000000000")
    assert [body["run_id"] for body in hook.bodies] == [RUN_ID]
    assert {path: path.read_bytes() for path in broken.dir.rglob("*.json")} == kept


# ----------------------------------------------------------------------------- secrets and Jenkins settings


@pytest.mark.parametrize("url", ["http://[::1", "http://jenkins:99999/", "jenkins.example.com", "http:///x",
                                 "https://jen kins/"])
def test_a_malformed_jenkins_url_is_one_line(url):
    said = cli("jenkins", "status", env={"JENKINS_URL": url, "JENKINS_USER": None, "JENKINS_API_TOKEN": None})
    assert_refused(said, 2, "JENKINS_URL")


def test_credentials_inside_jenkins_url_are_never_echoed():
    said = cli("jenkins", "status", env={"JENKINS_URL": f"http://admin:{SECRET}@127.0.0.1:9/",
                                         "JENKINS_USER": None, "JENKINS_API_TOKEN": None})
    line = assert_refused(said, 7)
    assert SECRET not in said.stdout + said.stderr and "admin:" not in line


def test_credentials_inside_a_malformed_jenkins_url_are_never_echoed():
    said = cli("jenkins", "status", env={"JENKINS_URL": f"http://admin:{SECRET}@[::1/",
                                         "JENKINS_USER": None, "JENKINS_API_TOKEN": None})
    assert_refused(said, 2, "JENKINS_URL")
    assert SECRET not in said.stdout + said.stderr


def test_the_jenkins_token_never_shows_in_an_error():
    said = cli("jenkins", "status", env={"JENKINS_URL": "http://127.0.0.1:9/", "JENKINS_USER": "admin",
                                         "JENKINS_API_TOKEN": SECRET})
    assert_refused(said, 7)
    assert SECRET not in said.stdout + said.stderr


@pytest.mark.parametrize("url", ["hooks.example.com/x", "http://[::1", "http://h:99999/", "http://h/a\nb"])
def test_a_malformed_webhook_variable_is_one_line_and_not_shown(tmp_path, user, url):
    make_store(tmp_path / "store", user)
    said = cli("notify", "--run", RUN_ID, "--home", tmp_path / "store", env={"MLCI_WEBHOOK_URL": url})
    line = assert_refused(said, 2, "MLCI_WEBHOOK_URL")
    assert url not in line


def test_webhook_credentials_in_the_config_are_not_echoed(tmp_path, user):
    make_store(tmp_path / "store", user, notify={"webhook_url": f"http://bot:{SECRET}@127.0.0.1:9/x", "retries": 0})
    said = cli("notify", "--run", RUN_ID, "--home", tmp_path / "store")
    assert_refused(said, 8)
    assert SECRET not in said.stdout + said.stderr


def test_the_smtp_password_is_redacted_from_any_error_line(tmp_path, user):
    """Even a message that happens to quote the password (here: as a run id) never prints it."""
    make_store(tmp_path / "store", user)
    said = cli("status", "--run", f"{SECRET}/x", "--home", tmp_path / "store", env={"MLCI_SMTP_PASSWORD": SECRET})
    assert_refused(said, 2, "not a run id")
    assert SECRET not in said.stderr


def test_notify_usage_mistakes_are_exit_2(tmp_path, user):
    make_store(tmp_path / "store", user)
    said = cli("notify", "--run", RUN_ID, "--resend-unconfirmed", "--home", tmp_path / "store")
    assert said.code == 2 and "Traceback" not in said.stderr
    assert RunStore(tmp_path / "store").run(RUN_ID).outbox.exists() is False
