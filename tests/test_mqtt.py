"""MQTT against a real mosquitto: units of one site share the arm state, Home Assistant finds
them by discovery, the last will marks a killed unit offline, a broker outage costs detection and
email nothing, bad messages change nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homesec.capture.daemon import Daemon
from homesec.config import Config, parse
from homesec.integrations import units
from homesec.integrations.mqtt import SYNC_GRACE_S
from homesec.storage.store import Store
from homesec.system.credentials import MQTT_PASSWORD_ENV, PASSWORD_ENV
from homesec.web import accounts, create_app
from tests.mail_support import PASSWORD as SMTP_PASSWORD
from tests.mail_support import FastCrossingCamera, SmtpServer, make_certs
from tests.mail_support import config_dict as mail_config_dict
from tests.mqtt_support import (
    HA_PASSWORD,
    HA_USER,
    PASSWORD,
    Broker,
    Unit,
    Watcher,
    mosquitto_available,
    poll,
    unit_config,
)
from tests.mqtt_support import USER as UNIT_USER

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="needs mosquitto")

HA_STATES = {"disarmed", "arming", "armed_away", "pending", "triggered"}


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    items: list[Any] = []
    yield items
    for it in reversed(items):
        it.stop() if not isinstance(it, Watcher) else it.close()


@pytest.fixture
def broker(tmp_path: Path, cleanup: list[Any]) -> Broker:
    b = Broker(tmp_path / "broker").start()
    cleanup.append(b)
    return b


def arm_row(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT state, deadline_ts, changed_ts, changed_by FROM arm_state"
                                 ).fetchone())
    except sqlite3.OperationalError:  # not created yet
        return {"state": None}
    finally:
        conn.close()


def state_of(db: Path) -> str | None:
    return arm_row(db)["state"]


def start_unit(root: Path, broker: Broker, name: str, cleanup: list[Any], **kw: Any) -> Unit:
    u = Unit(root, unit_config(root, broker, name, **kw)).start()
    cleanup.append(u)
    return u


def wait_online(w: Watcher, *units: Unit, timeout: float = 30.0) -> None:
    for u in units:
        topic = f"homesec/home/{u.name}/availability"
        ok = poll(lambda t=topic: w.payload(t) == b"online", timeout)
        assert ok, f"{u.name} never said online:\n{u.log_text()[-2000:]}"


def wait_synced(*us: Unit, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Wait until each unit says (in the mqtt.json its daemon writes, as the web UI reads it)
    that its post-connect sync with the site is done; returns their statuses."""
    out = []
    for u in us:
        st = poll(lambda u=u: (s := units.read_status(u.runtime)) and s.get("synced") and s,
                  timeout)
        assert st, f"{u.name} never synced:\n{u.log_text()[-2000:]}"
        assert st["connected"] is True
        # Not before the grace for the retained site state is over.
        assert st["synced_ts"] >= st["since"] + SYNC_GRACE_S - 0.01, st
        out.append(st)
    return out


def within(seconds: float, what: str, predicate: Any) -> None:
    assert poll(predicate, seconds), f"not within {seconds} s: {what}"


# ---- one arm state for the site ----------------------------------------------------------------

def test_arm_via_api_and_via_mqtt_reaches_every_unit_and_a_late_unit_catches_up(
        tmp_path: Path, broker: Broker, cleanup: list[Any]) -> None:
    w = Watcher(broker)
    cleanup.append(w)
    front = start_unit(tmp_path, broker, "front", cleanup)
    garage = start_unit(tmp_path, broker, "garage", cleanup)
    wait_online(w, front, garage)
    wait_synced(front, garage)  # (else a change made now would wait out their grace)

    # Through front's real JSON API (token auth), as the phone would.
    cfg_front = parse(front.data)
    store = Store(cfg_front.paths.db_path)
    token = accounts.create_token(store, "phone")[1]
    store.close()
    api = create_app(cfg_front).test_client()
    auth = {"Authorization": f"Bearer {token}"}
    resp = api.post("/api/v1/arm", json={"delay_s": 0}, headers=auth)
    assert resp.status_code == 200 and resp.json["state"] == "armed"
    within(1.0, "garage armed after front's API", lambda: state_of(garage.db) == "armed")
    assert arm_row(garage.db)["changed_by"] == "unit front: token:phone"
    assert w.payload("homesec/home/garage/alarm") == b"armed_away" or poll(
        lambda: w.payload("homesec/home/garage/alarm") == b"armed_away", 1.0)

    # As Home Assistant does it: a plain (not retained) DISARM on the command topic.
    w.publish("homesec/home/arm/set", "DISARM")
    within(1.0, "both disarmed by Home Assistant",
           lambda: state_of(front.db) == "disarmed" and state_of(garage.db) == "disarmed")
    assert arm_row(front.db)["changed_by"].startswith("Home Assistant")
    w.publish("homesec/home/arm/set", "ARM_AWAY")
    within(1.0, "both armed by Home Assistant",
           lambda: state_of(front.db) == "armed" and state_of(garage.db) == "armed")
    # Every unit ends on the same site state, the retained one.
    within(2.0, "the retained site state armed", lambda: (p := w.payload("homesec/home/arm"))
           and json.loads(p)["state"] == "armed")

    # A unit started later catches up from the retained state.
    porch = start_unit(tmp_path, broker, "porch", cleanup)
    wait_online(w, porch)
    # Once porch says it is synced, it has taken the retained state: no further wait.
    wait_synced(porch)
    assert state_of(porch.db) == "armed"
    assert "unit " in arm_row(porch.db)["changed_by"]  # where it came from

    # The web UI of front lists the others (written by its daemon into its SQLite file).
    def listed() -> Any:
        st = api.get("/api/v1/status", headers=auth).json["mqtt"]
        names = {u["unit"]: u for u in st["units"]}
        return st if {"garage", "porch"} <= set(names) and all(
            u["online"] for u in names.values()) else None
    st = poll(listed, 5.0)
    assert st, api.get("/api/v1/status", headers=auth).json["mqtt"]
    assert st["connected"] is True and st["site"] == "home" and st["unit"] == "front"
    assert st["synced"] is True and st["synced_ts"] >= st["since"] + SYNC_GRACE_S - 0.01
    assert {u["url"] for u in st["units"]} == {"http://garage.test:8080", "http://porch.test:8080"}
    page = api.get("/", headers=auth).data.decode()
    assert "MQTT: connected" in page and 'href="http://garage.test:8080"' in page
    for u in (front, garage, porch):
        assert PASSWORD not in u.log_text()


def test_conflicting_changes_end_in_one_state_everywhere(
        tmp_path: Path, broker: Broker, cleanup: list[Any]) -> None:
    """Two units changed at almost the same moment: both end in the same state, the one with the
    larger stamp, and the retained message carries it."""
    w = Watcher(broker)
    cleanup.append(w)
    a = start_unit(tmp_path, broker, "a", cleanup)
    b = start_unit(tmp_path, broker, "b", cleanup)
    wait_online(w, a, b)
    wait_synced(a, b)
    for i in range(5):
        sa, sb = Store(a.db), Store(b.db)
        want_a = i % 2 == 0
        sa.set_arm(want_a, by="a-test")
        sb.set_arm(not want_a, by="b-test")
        sa.close()
        sb.close()

        def settled() -> Any:
            ra, rb = arm_row(a.db), arm_row(b.db)
            p = w.payload("homesec/home/arm")
            site = json.loads(p) if p else None
            return site if site and ra["state"] == rb["state"] == site["state"] else None
        site = poll(settled, 3.0)
        assert site, (arm_row(a.db), arm_row(b.db), w.payload("homesec/home/arm"))
        # b's change was made later: the larger stamp, so b's state is the site's.
        assert (site["unit"], site["state"]) == ("b", "disarmed" if want_a else "armed")


# ---- Home Assistant discovery and the last will --------------------------------------------------

REQUIRED = {  # from each platform's documentation (required: true / exclusive)
    "alarm_control_panel": ["state_topic", "command_topic"],
    "binary_sensor": ["state_topic"],
    "sensor": ["state_topic"],
    "image": [],  # image_topic or url_topic, exactly one
}


def test_discovery_configs_parse_with_required_fields_and_last_will_on_sigkill(
        tmp_path: Path, broker: Broker, cleanup: list[Any]) -> None:
    w = Watcher(broker)
    cleanup.append(w)
    u = start_unit(tmp_path, broker, "hall", cleanup)
    wait_online(w, u)
    wait_synced(u)  # a unit alone, no site state anywhere yet: it syncs all the same
    w.close()
    # Home Assistant started after the unit: it finds everything as retained messages.
    w = Watcher(broker)
    cleanup.append(w)
    prefix = "homeassistant/"
    configs = poll(lambda: (c := [t for t in w.topics() if t.startswith(prefix)
                                  and t.endswith("/config")]) and len(c) >= 5 and c, 5.0)
    assert configs, w.topics()
    by_component: dict[str, list[dict[str, Any]]] = {}
    for topic in configs:
        component, node, _obj, _ = topic[len(prefix):].split("/")
        assert node == "homesec_home_hall"
        msg = w.messages[topic]
        assert msg.retain, f"{topic} must be retained"
        by_component.setdefault(component, []).append(json.loads(msg.payload))
    assert set(by_component) == {"alarm_control_panel", "binary_sensor", "image", "sensor"}
    assert len(by_component["sensor"]) == 2
    ids = set()
    for component, payloads in by_component.items():
        for p in payloads:
            for key in REQUIRED[component]:
                assert isinstance(p.get(key), str) and p[key], f"{component}: {key} missing"
            assert p["device"]["identifiers"] == ["homesec_home_hall"]
            assert p["availability_topic"] == "homesec/home/hall/availability"
            assert p["unique_id"] not in ids
            ids.add(p["unique_id"])
    (panel,) = by_component["alarm_control_panel"]
    assert panel["code_arm_required"] is False and panel["supported_features"] == ["arm_away"]
    state = poll(lambda: w.payload(panel["state_topic"]), 5.0)
    assert state and state.decode() in HA_STATES
    (motion,) = by_component["binary_sensor"]
    assert motion["device_class"] == "motion"
    assert poll(lambda: w.payload(motion["state_topic"]), 5.0) in (b"ON", b"OFF")
    (image,) = by_component["image"]
    assert ("image_topic" in image) != ("url_topic" in image)
    assert image["content_type"] == "image/jpeg"
    # The snapshot of the first event (the demo's first crossing is at 5 s) is a JPEG.
    jpeg = poll(lambda: w.payload(image["image_topic"]), 25.0)
    assert jpeg and jpeg[:3] == b"\xff\xd8\xff"
    event = json.loads(w.payload("homesec/home/hall/event") or b"{}")
    assert set(event) >= {"id", "unit", "start", "end", "in_progress", "boxes", "snapshot_url",
                          "clip_url"}
    assert event["unit"] == "hall" and event["in_progress"] is False and event["boxes"]
    assert event["snapshot_url"] == f"http://hall.test:8080/api/v1/events/{event['id']}/snapshot.jpg"
    within(2.0, "motion ON during the event, OFF after it", lambda: (
        seen := [p for _, t, p, _ in list(w.history) if t == motion["state_topic"]])
        and b"ON" in seen and seen[-1] == b"OFF")
    sensors = poll(lambda: (p := w.payload(by_component["sensor"][0]["state_topic"])) and
                   json.loads(p), 5.0)
    assert set(sensors) >= {"fps", "disk_used_pct"}

    # Home Assistant restarts (its birth message): every config comes again.
    before = len(w.history)
    w.publish("homeassistant/status", "online")
    again = poll(lambda: {t for _, t, _, _ in w.history[before:] if t in configs} == set(configs),
                 3.0)
    assert again, "configs not republished after homeassistant/status = online"

    # Killed without a word: the broker publishes the last will.
    u.stop(signal.SIGKILL)
    within(5.0, "availability offline after SIGKILL",
           lambda: w.payload("homesec/home/hall/availability") == b"offline")
    late = Watcher(broker, topics=("homesec/home/hall/availability",))
    cleanup.append(late)
    within(2.0, "the last will is retained", lambda: late.payload(
        "homesec/home/hall/availability") == b"offline")


def test_event_message_gets_the_url_of_its_clip_once_recorded_and_the_url_serves_it(
        tmp_path: Path, broker: Broker, cleanup: list[Any]) -> None:
    w = Watcher(broker, topics=("homesec/home/yard/event",))
    cleanup.append(w)
    u = start_unit(tmp_path, broker, "yard", cleanup)

    def with_clip() -> Any:
        msgs = [json.loads(p) for _, t, p, _ in list(w.history)]
        return next((m for m in msgs if m["clip_url"]), None)
    # (the demo's first crossing is at 5 s; the clip is complete when its event ends)
    event = poll(with_clip, 30.0)
    assert event, u.log_text()[-3000:]
    eid = event["id"]
    assert event["clip_url"] == f"http://yard.test:8080/api/v1/events/{eid}/clip.mp4"
    # The first message of the event (its start) had no clip yet: null, not a dead link.
    first = next(json.loads(p) for _, _, p, _ in list(w.history) if json.loads(p)["id"] == eid)
    assert first["in_progress"] is True and first["clip_url"] is None
    conn = sqlite3.connect(u.db)
    try:
        assert conn.execute("SELECT part FROM clips WHERE event_id = ?", (eid,)).fetchall()[0] == (1,)
    finally:
        conn.close()
    # The retained message, what Home Assistant finds later, carries the URL too.
    late = Watcher(broker, topics=("homesec/home/yard/event",))
    cleanup.append(late)
    retained = poll(lambda: (p := late.payload("homesec/home/yard/event")) and json.loads(p), 5.0)
    assert retained and retained["clip_url"] is not None
    # The path is the web UI's link to the clip: the unit's web app serves the MP4 there.
    web = create_app(parse({**u.data, "web": {**u.data["web"], "auth": False}})).test_client()
    resp = web.get(event["clip_url"].removeprefix("http://yard.test:8080"),
                   headers={"Host": "127.0.0.1"})
    assert resp.status_code == 200 and resp.mimetype == "video/mp4"
    assert resp.data[4:8] == b"ftyp"
    html = web.get(f"/events/{eid}", headers={"Host": "127.0.0.1"}).data.decode()
    assert f'src="/api/v1/events/{eid}/clip.mp4"' in html


# ---- TLS ---------------------------------------------------------------------------------------

def test_tls_broker_with_a_ca_made_here_and_the_password_from_a_credential_file(
        tmp_path: Path, cleanup: list[Any]) -> None:
    certs = make_certs(tmp_path / "certs")
    broker = Broker(tmp_path / "broker", certs=certs).start()
    cleanup.append(broker)
    w = Watcher(broker)
    cleanup.append(w)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text(PASSWORD + "\n")
    data = unit_config(tmp_path, broker, "attic")
    u = Unit(tmp_path, data, env={"HOMESEC_MQTT_PASSWORD": "", "CREDENTIALS_DIRECTORY": str(creds)})
    u.start()
    cleanup.append(u)
    wait_online(w, u)
    w.publish("homesec/home/arm/set", "ARM_AWAY")
    within(2.0, "armed over TLS", lambda: state_of(u.db) == "armed")
    assert PASSWORD not in u.log_text()
    u.stop()  # SIGTERM: a clean stop says offline itself
    assert u.proc is not None and u.proc.returncode == 0
    within(2.0, "offline after a clean stop",
           lambda: w.payload("homesec/home/attic/availability") == b"offline")


def test_wrong_password_shows_disconnected_and_capture_goes_on(
        tmp_path: Path, broker: Broker, cleanup: list[Any]) -> None:
    data = unit_config(tmp_path, broker, "shed")
    u = Unit(tmp_path, data, env={"HOMESEC_MQTT_PASSWORD": "not it"}).start()
    cleanup.append(u)
    cfg = parse(data)
    status_file = cfg.paths.runtime_dir / "mqtt.json"
    st = poll(lambda: status_file.exists() and (s := json.loads(status_file.read_text()))
              and s.get("error") and s, 15.0)
    assert st and st["connected"] is False, u.log_text()
    assert "not authorized" in st["error"].lower() or "bad user" in st["error"].lower()
    page = create_app(parse({**data, "web": {**data["web"], "auth": False}})).test_client().get(
        "/", headers={"Host": "127.0.0.1"})
    assert "MQTT: disconnected since" in page.data.decode()
    assert "not it" not in u.log_text()
    frames = poll(lambda: (p := cfg.paths.runtime_dir / "status.json").exists()
                  and json.loads(p.read_text())["frames"] > 20, 15.0)
    assert frames, "capture stopped while the broker refused us"


# ---- bad messages --------------------------------------------------------------------------------

def test_bad_messages_are_ignored_with_one_log_line_each_and_change_nothing(
        tmp_path: Path, broker: Broker, cleanup: list[Any]) -> None:
    w = Watcher(broker)
    cleanup.append(w)
    data = unit_config(tmp_path, broker, "den")
    store = Store(parse(data).paths.db_path)
    store.set_arm(True, by="owner")
    store.close()
    # Waiting at the broker before the unit starts: a retained command (it would re-run on every
    # connect) and a retained state stamped two hours ahead (a unit whose clock went wrong).
    w.publish("homesec/home/arm/set", "DISARM", retain=True)
    w.publish("homesec/home/arm", json.dumps({
        "site": "home", "state": "disarmed", "deadline_ts": None, "ts": time.time() + 7200,
        "unit": "zz", "by": "future"}), retain=True)
    u = Unit(tmp_path, data).start()
    cleanup.append(u)
    wait_online(w, u)
    before = arm_row(u.db)
    assert before["state"] == "armed"
    log_rows = 1
    now = time.time()
    bad = [
        ("homesec/home/arm", b"\xff\xfe garbage", True),
        ("homesec/home/arm", b"[1, 2]", False),
        ("homesec/home/arm", json.dumps({"site": "other", "state": "disarmed", "ts": now + 1,
                                         "unit": "x", "by": "y"}).encode(), False),
        ("homesec/home/arm", json.dumps({"site": "home", "state": "off", "ts": now + 1,
                                         "unit": "x", "by": "y"}).encode(), False),
        ("homesec/home/arm", json.dumps({"site": "home", "state": "disarmed", "ts": now + 7200,
                                         "unit": "zz", "by": "future"}).encode(), True),
        ("homesec/home/arm", json.dumps({"site": "home", "state": "disarmed", "ts": "soon",
                                         "unit": "x", "by": "y"}).encode(), False),
        ("homesec/home/arm/set", b"ARM_NIGHT", False),
        ("homesec/home/arm/set", b"{not json", False),
        ("homesec/home/other/availability", b"maybe", False),
        ("homesec/home/other/info", json.dumps({"url": "javascript:alert(1)"}).encode(), False),
        ("homesec/home/other/event", b"{{{", False),
    ]
    for topic, payload, retain in bad:
        w.publish(topic, payload, retain=retain)
    # A good message after them: handled in order, so once it shows, all the bad ones were read.
    w.publish("homesec/home/sentinel/availability", "online")
    conn = sqlite3.connect(u.db)
    try:
        within(3.0, "the sentinel unit recorded", lambda: conn.execute(
            "SELECT unit FROM site_units").fetchall() == [("sentinel",)])
        assert conn.execute("SELECT COUNT(*) FROM arm_log").fetchone()[0] == log_rows
    finally:
        conn.close()
    assert arm_row(u.db) == before
    ignored = [ln for ln in u.log_text().splitlines() if "ignored a message" in ln]
    assert len(ignored) == len(bad) + 2, "\n".join(ignored)
    assert any("future" in ln for ln in ignored) and any("site 'other'" in ln for ln in ignored)
    assert any("retained command" in ln for ln in ignored)
    # The unit still obeys a good command afterwards.
    w.publish("homesec/home/arm/set", "", retain=True)  # clear the retained bad command
    w.publish("homesec/home/arm/set", "DISARM")
    within(2.0, "disarmed by a good command", lambda: state_of(u.db) == "disarmed")


def test_with_a_pin_disarming_over_mqtt_needs_the_code_which_no_message_carries(
        tmp_path: Path, broker: Broker, cleanup: list[Any]) -> None:
    w = Watcher(broker)
    cleanup.append(w)
    data = unit_config(tmp_path, broker, "vault")
    store = Store(parse(data).paths.db_path)
    store.set_arm(True, by="owner")
    store.close()
    u = Unit(tmp_path, data, env={"HOMESEC_MQTT_PIN": "4321"}).start()
    cleanup.append(u)
    wait_online(w, u)
    config = poll(lambda: (p := w.payload(
        "homeassistant/alarm_control_panel/homesec_home_vault/alarm/config")) and json.loads(p), 5)
    assert config["code"] == "REMOTE_CODE"
    w.publish("homesec/home/arm/set", b"DISARM")  # no code: refused
    # What Home Assistant's command_template sends once the user typed the code.
    w.publish("homesec/home/arm/set", '{"action": "DISARM", "code": "4321"}')
    within(2.0, "disarmed with the right code", lambda: state_of(u.db) == "disarmed")
    w.publish("homesec/home/arm/set", "ARM_AWAY")  # arming needs no code
    within(2.0, "armed without a code", lambda: state_of(u.db) == "armed")
    # A wrong code locks disarming for a few seconds: the right one right after is refused too.
    w.publish("homesec/home/arm/set", '{"action": "DISARM", "code": "1111"}')
    w.publish("homesec/home/arm/set", '{"action": "DISARM", "code": "4321"}')
    ignored = poll(lambda: [ln for ln in u.log_text().splitlines() if "ignored a message" in ln]
                   if u.log_text().count("ignored a message") >= 3 else None, 3.0)
    assert ignored, u.log_text()
    assert "without the code" in ignored[0] and "with a wrong code" in ignored[1]
    assert "wrong code came" in ignored[2]
    assert state_of(u.db) == "armed"
    assert "4321" not in u.log_text()
    assert all(b"4321" not in m.payload for t, m in w.messages.items() if t != "homesec/home/arm/set")


# ---- broker outage -------------------------------------------------------------------------------

def test_broker_down_10s_detection_and_email_go_on_then_everything_is_republished(
        tmp_path: Path, broker: Broker, cleanup: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MQTT_PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv(PASSWORD_ENV, SMTP_PASSWORD)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    certs = make_certs(tmp_path / "certs")
    smtp = SmtpServer("starttls", certs).start()
    cleanup.append(smtp)
    data = mail_config_dict(tmp_path / "unit", "starttls", smtp.port, certs, min_interval_s=1.0)
    data["mqtt"] = unit_config(tmp_path, broker, "door")["mqtt"]
    cfg: Config = parse(data)
    Store(cfg.paths.db_path).set_arm(True, "test")
    c = cfg.camera
    camera = FastCrossingCamera(period_s=6.5, lead_s=0.5, width=c.width, height=c.height,
                                lores_width=c.lores_width, fps=c.fps, realtime=True)
    daemon = Daemon(cfg, camera=camera)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()

    class Stopper:
        def stop(self) -> None:
            daemon.stop.set()
            thread.join(10)
    cleanup.append(Stopper())
    w = Watcher(broker)
    assert poll(lambda: w.payload("homesec/home/door/event"), 15.0), "no event before the outage"
    w.close()
    store = Store(cfg.paths.db_path)
    last_id = store.events(limit=1)[0].id
    mails_before = len(smtp.messages)

    broker.stop()
    t_down = time.time()
    status_file = cfg.paths.runtime_dir / "mqtt.json"
    st = poll(lambda: (s := json.loads(status_file.read_text())) and not s["connected"] and s, 5.0)
    assert st and st["since"] >= t_down - 0.5
    assert st["synced"] is False and st["synced_ts"] is None  # cleared with the connection
    page = create_app(parse({**data, "web": {**data["web"], "auth": False}})).test_client().get(
        "/", headers={"Host": "127.0.0.1"})
    assert "MQTT: disconnected since" in page.data.decode()
    poll(lambda: time.time() - t_down >= 10.0, 12.0)  # the outage lasts 10 s
    outage = [e for e in store.events(limit=50) if e.id > last_id]
    assert len(outage) >= 1, "detection stopped during the broker outage"
    assert len(smtp.messages) > mails_before, "email stopped during the broker outage"
    outage_ids = {e.id for e in outage}

    # Back, empty (no persistence), first for Home Assistant only: its watcher subscribes before
    # the unit may log in again, so it sees everything the unit sends after the outage.
    broker.set_users({HA_USER: HA_PASSWORD})
    broker.start()
    w2 = Watcher(broker)
    cleanup.append(w2)
    broker.set_users({UNIT_USER: PASSWORD, HA_USER: HA_PASSWORD})
    t_back = time.time()
    broker.reload()
    within(10.0, "availability republished",
           lambda: w2.payload("homesec/home/door/availability") == b"online")
    within(3.0, "alarm state republished",
           # (armed_away, or triggered: the outage's events went off while armed)
           lambda: w2.payload("homesec/home/door/alarm") in (b"armed_away", b"triggered"))
    site = poll(lambda: (p := w2.payload("homesec/home/arm")) and json.loads(p), 3.0)
    assert site and site["state"] == "armed" and site["unit"] == "door"
    st = poll(lambda: (s := json.loads(status_file.read_text())) and s["synced"] and s, 5.0)
    assert st and st["connected"] and st["synced_ts"] >= max(st["since"], t_back)

    def published_ids() -> set[int]:
        return {json.loads(p)["id"] for _, t, p, _ in list(w2.history)
                if t == "homesec/home/door/event"}
    within(5.0, "the outage's events published", lambda: outage_ids <= published_ids())
    assert all(p in (b"ON", b"OFF") for _, t, p, _ in w2.history if t.endswith("/motion"))
    store.close()
