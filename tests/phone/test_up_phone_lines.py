"""What `dashdesk up --demo` tells about the phone app, and what it tells the server (no processes started)."""

from __future__ import annotations

from dashdesk import config
from launcher import broker
from launcher import supervisor as sup
from server.app import create_app
from server.db import Database
from server.models import Enrolment


def make(tmp_path, monkeypatch, version, **kwargs) -> sup.Supervisor:
    monkeypatch.setattr(broker, "find_mosquitto", lambda: "/usr/sbin/mosquitto")
    monkeypatch.setattr(broker, "mosquitto_version", lambda exe=None: version)
    cfg = config.load(tmp_path / "none.toml", env={})
    cfg["data_dir"] = str(tmp_path / "data")
    s = sup.Supervisor(cfg, mqtt_port=broker.free_port(), demo=True, **kwargs)
    s.choose_broker()
    return s


def test_with_a_websockets_listener_the_demo_makes_a_one_time_link_for_a_phone(tmp_path, monkeypatch):
    s = make(tmp_path, monkeypatch, (2, 0, 18), ws_port=broker.free_port())
    env = s.prepare_database()
    assert s._env(env)["DASHDESK_APP__WS_PORT"] == str(s.ws_port)
    line = s._phone_line()
    assert line.startswith(f"phone app: http://127.0.0.1:{s.http_port}/app; set a phone up")
    link = line.rsplit(" ", 1)[1]
    assert link.startswith(f"http://127.0.0.1:{s.http_port}/app/enroll/")
    app = create_app({"data_dir": str(tmp_path / "data"), "app": {"ws_port": s.ws_port}})
    body = app.test_client().post(link.split(str(s.http_port), 1)[1], json={}).get_json()
    assert body["site"]["code"] == "shop-demo"
    assert sorted(b["button"] for b in body["buttons"]) == ["b1", "b2", "b3"]  # the demo device's
    app.extensions["dashdesk"].db.close()


def test_without_one_the_demo_says_how_to_get_it_and_makes_no_link(tmp_path, monkeypatch):
    s = make(tmp_path, monkeypatch, (2, 0, 11))
    assert s.ws_port is None
    env = s.prepare_database()
    assert s._env(env)["DASHDESK_APP__WS_PORT"] == "0"
    assert s._phone_line() == (f"phone app: http://127.0.0.1:{s.http_port}/app needs the broker's WebSockets "
                               f"listener: start with --ws-port 9001 (this Mosquitto opens it to every network "
                               f"interface)")
    db = Database(env["DASHDESK_DATABASE_URL"])
    with db.read() as session:
        assert session.query(Enrolment).count() == 0
    db.close()
