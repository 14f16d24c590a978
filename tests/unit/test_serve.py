"""The server command's choices and the pieces of server.serve that need no server."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from click.testing import CliRunner

from launcher.cli import cli
from server.serve import Limits, Listening, NewestFirst


def test_more_than_one_worker_process_is_refused_with_what_to_do_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("DASHDESK_CONFIG", str(tmp_path / "none.toml"))
    result = CliRunner().invoke(cli, ["server", "--workers", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--workers" in result.output and "one process" in result.output and "behind a proxy" in result.output
    assert not (tmp_path / "dashdesk.sqlite3").exists()  # refused before anything was made


def test_a_request_wakes_the_thread_that_began_to_wait_last():
    cv = NewestFirst()
    woken: list[int] = []

    def wait(n: int) -> None:
        with cv:
            cv.wait()
            woken.append(n)

    threads = []
    try:
        for n in range(3):
            t = threading.Thread(target=wait, args=(n,), daemon=True)
            t.start()
            threads.append(t)
            while len(cv._waiters) < n + 1:  # type: ignore[attr-defined]
                time.sleep(0.001)
        for expected in ([2], [2, 1]):
            with cv:
                cv.notify()
            while len(woken) < len(expected):
                time.sleep(0.001)
            assert woken == expected
    finally:
        with cv:
            cv.notify_all()
        for t in threads:
            t.join(5)
    assert woken == [2, 1, 0]


def test_forwarded_headers_reach_the_app_whose_proxy_fix_decides_whom_to_trust():
    seen: dict[str, str] = {}

    def app(environ, start_response):
        seen.update({k: v for k, v in environ.items() if k.startswith("HTTP_X_FORWARDED")})
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    listening = Listening(app, "127.0.0.1", 0, 2, Limits())
    stop = threading.Event()
    loop = threading.Thread(target=listening.run, args=(stop,), daemon=True)
    loop.start()
    try:
        r = requests.get(listening.urls[0] + "/", timeout=5, headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.2.3", "X-Forwarded-Host": "desk.example"})
    finally:
        stop.set()
        loop.join(15)
    assert r.status_code == 200 and not loop.is_alive()
    assert seen == {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_FOR": "10.1.2.3",
                    "HTTP_X_FORWARDED_HOST": "desk.example"}


@pytest.mark.parametrize("setting", [{"header_timeout_s": "nan"}, {"body_timeout_s": "inf"}, {"idle_timeout_s": 0},
                                     {"idle_timeout_s": "-1"}, {"connection_limit": "\uff11\uff10\uff10"},
                                     {"connection_limit": "1e3"}])
def test_a_setting_that_would_turn_a_deadline_off_or_is_no_number_is_refused_with_its_name(setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        Limits.from_config(setting)


def test_the_settings_take_numbers_as_toml_and_the_environment_give_them():
    limits = Limits.from_config({"header_timeout_s": "2.5", "idle_timeout_s": 3, "connection_limit": "500"})
    assert (limits.header_timeout_s, limits.idle_timeout_s, limits.connection_limit) == (2.5, 3.0, 500)
