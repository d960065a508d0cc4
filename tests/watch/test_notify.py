"""Webhook and apprise delivery against a loopback receiver: retries, dead letters,
refused schemes, bounded reads and timeouts."""

from __future__ import annotations

import pytest
from watch_helpers import receiver

from core.errors import InvalidArgument
from core.store.versionstore import VersionStore
from core.watch import notify
from core.watch.config import Channel

DATA = {"event": "status_changed", "model": "m", "version": "v1", "status": "alert",
        "previous": "ok", "message": "alert: rmse = 3", "links": notify.links("m", "v1")}


@pytest.fixture
def store(tmp_path):
    return VersionStore(str(tmp_path / "board"))


def test_a_webhook_gets_the_payload(store, monkeypatch):
    with receiver() as rec:
        monkeypatch.setenv("HOOK_URL", rec.url)
        r = notify.deliver(store, Channel("ops", "webhook", "HOOK_URL"), DATA, retries=2,
                           backoff=0)
    assert r == {"channel": "ops", "kind": "webhook", "delivered": True, "attempts": 1,
                 "error": ""}
    assert rec.payloads() == [DATA]


def test_failures_are_retried_with_backoff_then_dead_lettered(store, monkeypatch):
    waits = []
    with receiver() as rec:
        monkeypatch.setenv("HOOK_URL", rec.url)
        rec.fail_first = 2
        ok = notify.deliver(store, Channel("ops", "webhook", "HOOK_URL"), DATA, retries=3,
                            backoff=0.5, sleep=waits.append)
        assert ok["delivered"] and ok["attempts"] == 3 and waits == [0.5, 1.0]
        assert len(rec.payloads()) == 1
        rec.fail_first, rec.calls = 10, 0
        waits.clear()
        bad = notify.deliver(store, Channel("ops", "webhook", "HOOK_URL"), DATA, retries=2,
                             backoff=0.1, sleep=waits.append)
    assert not bad["delivered"] and bad["attempts"] == 3 and waits == [0.1, 0.2]
    assert "answered HTTP 503" in bad["error"] and "$HOOK_URL" in bad["error"]
    (dead,) = notify.dead_letters(store, "m")
    assert dead["channel"] == "ops" and dead["env"] == "HOOK_URL" and dead["attempts"] == 3
    assert dead["payload"]["status"] == "alert"
    # the URL (it may hold a token) is nowhere on the board
    for path in store.fs.find(store.path(".fixative")):
        with store.fs.open(path, "rb") as f:
            assert rec.url.encode() not in f.read()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/",
                                 "127.0.0.1:9/hook", "http:///nohost"])
def test_a_webhook_that_is_not_http_is_refused_before_sending(store, monkeypatch, url):
    monkeypatch.setenv("HOOK_URL", url)
    waits = []
    r = notify.deliver(store, Channel("ops", "webhook", "HOOK_URL"), DATA, retries=3,
                       backoff=1, sleep=waits.append)
    assert not r["delivered"] and waits == [] and r["attempts"] == 1  # never retried
    assert ("http or https" in r["error"] or "no host" in r["error"]
            or "is not set" in r["error"])
    assert len(notify.dead_letters(store, "m")) == 1


def test_an_unset_variable_says_which(store, monkeypatch):
    monkeypatch.delenv("NOPE_URL", raising=False)
    r = notify.deliver(store, Channel("ops", "webhook", "NOPE_URL"), DATA, retries=0, backoff=0)
    assert "$NOPE_URL is not set: put the webhook URL of channel ops in it" in r["error"]


def test_a_redirect_is_not_followed(store, monkeypatch):
    with receiver() as rec:
        rec.mode = "redirect"
        monkeypatch.setenv("HOOK_URL", rec.url)
        r = notify.deliver(store, Channel("ops", "webhook", "HOOK_URL"), DATA, retries=0,
                           backoff=0)
    assert not r["delivered"] and "HTTP 302" in r["error"]


def test_a_huge_answer_is_not_read_in_full(store, monkeypatch):
    with receiver() as rec:
        rec.mode = "huge"
        monkeypatch.setenv("HOOK_URL", rec.url)
        r = notify.deliver(store, Channel("ops", "webhook", "HOOK_URL"), DATA, retries=0,
                           backoff=0)
    assert r["delivered"]
    assert rec.sent < 200 * 2**20  # the client hung up long before 200 MiB


def test_a_server_that_never_answers_is_given_up_on(store, monkeypatch):
    monkeypatch.setattr(notify, "TIMEOUT", 0.5)
    with receiver() as rec:
        rec.mode = "hang"
        monkeypatch.setenv("HOOK_URL", rec.url)
        r = notify.deliver(store, Channel("ops", "webhook", "HOOK_URL"), DATA, retries=1,
                           backoff=0)
    assert not r["delivered"] and r["attempts"] == 2
    assert "no answer within 0.5 s" in r["error"] or "timed out" in r["error"]


def test_apprise_delivers_through_its_json_service(store, monkeypatch):
    with receiver() as rec:
        monkeypatch.setenv("TEAM_URL", rec.url.replace("http://", "json://"))
        r = notify.deliver(store, Channel("team", "apprise", "TEAM_URL"), DATA, retries=0,
                           backoff=0)
    assert r["delivered"], r
    (body,) = rec.payloads()
    assert "alert: rmse = 3" in body["message"] and "m: ok -> alert" in body["title"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "nonsense", "notaservice://x"])
def test_apprise_refuses_what_it_cannot_send_to(store, monkeypatch, url):
    monkeypatch.setenv("TEAM_URL", url)
    r = notify.deliver(store, Channel("team", "apprise", "TEAM_URL"), DATA, retries=2,
                       backoff=0)
    assert not r["delivered"] and r["attempts"] == 1 and "$TEAM_URL" in r["error"]


def test_channels_name_variables_never_urls():
    with pytest.raises(InvalidArgument, match="not an environment variable name"):
        Channel("ops", "webhook", "https://hooks.slack.com/services/T0/B0/secret")
    with pytest.raises(InvalidArgument, match="not an environment variable name"):
        Channel("ops", "webhook", "$(rm -rf /)")
    with pytest.raises(InvalidArgument, match="channel name"):
        Channel("../../etc", "webhook", "OK_VAR")
    with pytest.raises(InvalidArgument, match="webhook or apprise"):
        Channel("ops", "sms", "OK_VAR")
