"""The site arm state's conflict rule and message checks (pure), the [mqtt] config section, the
MQTT password's sources, and what the home page shows from the daemon's MQTT status."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from homesec.config import ConfigError, parse
from homesec.integrations import units
from homesec.integrations.arm_adapter import HA_STATES, ArmAdapter
from homesec.integrations.discovery import Topics, discovery_messages
from homesec.integrations.site import (
    BadMessage,
    SiteArm,
    next_stamp,
    parse_command,
    parse_site_arm,
    site_state,
    wins,
)
from homesec.storage.store import Store
from homesec.system.credentials import mqtt_password
from homesec.web import create_app


def arm(state: str, ts: float, unit: str, deadline: float | None = None) -> SiteArm:
    return SiteArm(state, deadline, ts, unit, "test")


def msg(**fields: object) -> bytes:
    base: dict[str, object] = {"site": "home", "state": "armed", "deadline_ts": None,
                               "ts": 1000.0, "unit": "garage", "by": "web"}
    base.update(fields)
    return json.dumps(base).encode()


# ---- the rule ----------------------------------------------------------------------------------

def test_later_stamp_wins_ties_go_to_the_larger_unit_name() -> None:
    assert wins(arm("armed", 2.0, "a"), arm("disarmed", 1.0, "z"))
    assert not wins(arm("armed", 1.0, "z"), arm("disarmed", 2.0, "a"))
    assert wins(arm("armed", 1.0, "b"), arm("disarmed", 1.0, "a"))
    assert not wins(arm("armed", 1.0, "a"), arm("disarmed", 1.0, "b"))
    assert not wins(arm("armed", 1.0, "a"), arm("armed", 1.0, "a"))  # the same version
    assert wins(arm("armed", 1.0, "a"), None)


def test_every_arrival_order_ends_in_the_same_state() -> None:
    import itertools

    changes = [arm("armed", 5.0, "front"), arm("disarmed", 5.0, "garage"),
               arm("armed", 4.0, "porch"), arm("disarmed", 3.0, "front")]
    finals = set()
    for order in itertools.permutations(changes):
        held = None
        for c in order:
            if wins(c, held):
                held = c
        finals.add(held)
    assert finals == {changes[1]}


def test_a_change_made_after_seeing_another_wins_even_with_a_clock_behind() -> None:
    seen = arm("armed", 1000.0, "fast")  # from a unit whose clock is 30 s ahead
    stamp = next_stamp(seen, clock_ts=975.0)  # our clock says 975 when we disarm, later in truth
    assert stamp > seen.ts
    assert wins(arm("disarmed", stamp, "slow"), seen)
    assert next_stamp(seen, clock_ts=2000.0) == 2000.0
    assert next_stamp(None, clock_ts=5.0) == 5.0


def test_pending_and_triggered_are_armed_for_the_site_and_map_to_home_assistant() -> None:
    assert site_state("pending") == site_state("triggered") == "armed"
    assert site_state("arming") == "arming" and site_state("disarmed") == "disarmed"
    assert HA_STATES == {"disarmed": "disarmed", "arming": "arming", "armed": "armed_away",
                         "pending": "pending", "triggered": "triggered"}


def test_arming_deadlines_a_second_apart_are_the_same_state() -> None:
    assert arm("arming", 1, "a", 61.0).same_state(arm("arming", 2, "b", 61.8))
    assert not arm("arming", 1, "a", 61.0).same_state(arm("arming", 2, "b", 70.0))
    assert not arm("armed", 1, "a").same_state(arm("disarmed", 1, "a"))


# ---- messages ----------------------------------------------------------------------------------

def test_a_good_state_message_parses() -> None:
    got = parse_site_arm(msg(state="arming", deadline_ts=1060.0), "home", now=1000.0,
                         max_clock_skew_s=60)
    assert got == SiteArm("arming", 1060.0, 1000.0, "garage", "web")
    assert parse_site_arm(got.payload("home"), "home", 1000.0, 60) == got


@pytest.mark.parametrize(("payload", "why"), [
    (b"\xff\x00", "not JSON"),
    (b"[]", "not a JSON object"),
    (msg(site="cottage"), "site 'cottage'"),
    (msg(state="armed_home"), "unknown state"),
    (msg(ts="soon"), "'ts' must be a number"),
    (msg(ts=float("nan")), "'ts' must be a number"),
    (msg(ts=1000.0 + 3600), "in the future"),
    (msg(state="arming", deadline_ts=None), "needs deadline_ts"),
    (msg(unit=""), "'unit'"),
    (msg(unit="x" * 500), "'unit'"),
])
def test_bad_state_messages_say_why(payload: bytes, why: str) -> None:
    with pytest.raises(BadMessage, match=why):
        parse_site_arm(payload, "home", now=1000.0, max_clock_skew_s=60)


def test_commands_as_home_assistant_sends_them() -> None:
    assert parse_command(b"ARM_AWAY").action == "ARM_AWAY"
    assert parse_command(b" DISARM\n").action == "DISARM"
    assert parse_command(b'{"action": "DISARM", "code": ""}').action == "DISARM"
    for bad in (b"ARM_HOME", b"arm", b"", b"{", b'{"action": 3}', b"\xff"):
        with pytest.raises(BadMessage):
            parse_command(bad)


# ---- discovery ---------------------------------------------------------------------------------

def test_discovery_topics_and_payloads() -> None:
    t = Topics("home", "garage", "homeassistant")
    msgs = discovery_messages(t, "Garage", "http://garage.local:8080")
    assert sorted(msgs) == sorted([
        "homeassistant/alarm_control_panel/homesec_home_garage/alarm/config",
        "homeassistant/binary_sensor/homesec_home_garage/motion/config",
        "homeassistant/image/homesec_home_garage/snapshot/config",
        "homeassistant/sensor/homesec_home_garage/fps/config",
        "homeassistant/sensor/homesec_home_garage/disk/config",
    ])
    panel = msgs["homeassistant/alarm_control_panel/homesec_home_garage/alarm/config"]
    assert panel["command_topic"] == "homesec/home/arm/set"  # one command topic for the site
    assert panel["state_topic"] == "homesec/home/garage/alarm"
    assert "code" not in panel  # no PIN ever goes into a retained message
    assert all(m["device"]["configuration_url"] == "http://garage.local:8080" for m in msgs.values())


# ---- the adapter on a real SQLite file ---------------------------------------------------------

def test_adapter_applies_a_remote_change_with_its_stamp_and_source(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    ad = ArmAdapter(store, exit_delay_s=30)
    assert ad.read().initial
    ts = time.time() - 5
    wrote = ad.apply_remote(SiteArm("arming", ts + 60, ts, "garage", "web"), by="unit garage: web")
    local = ad.read()
    assert wrote.key == local.key
    assert (local.state, local.changed_ts, local.changed_by) == ("arming", ts, "unit garage: web")
    assert local.deadline_ts == pytest.approx(ts + 60)
    assert not local.initial
    local = ad.command("DISARM", by="Home Assistant")
    assert (local.state, local.changed_by) == ("disarmed", "Home Assistant")
    local = ad.command("ARM_AWAY", by="Home Assistant")
    assert local.state == "arming" and local.deadline_ts == pytest.approx(local.changed_ts + 30)
    assert local.ha_state == "arming"
    store.close()


# ---- config and password -----------------------------------------------------------------------

def test_mqtt_config_defaults_and_checks() -> None:
    cfg = parse({})
    assert cfg.mqtt.enabled is False and cfg.mqtt.site == "home" and cfg.mqtt.port == 1883
    assert cfg.mqtt.discovery_prefix == "homeassistant" and cfg.mqtt.verify_tls is True
    assert cfg.mqtt.unit_name()  # the host name when unit is empty
    assert parse({"mqtt": {"unit": "garage"}}).mqtt.unit_name() == "garage"
    with pytest.raises(ConfigError, match="mqtt: Value error, the MQTT password must not be in"):
        parse({"mqtt": {"password": "hunter2"}})
    with pytest.raises(ConfigError) as err:
        parse({"mqtt": {"password": "hunter2"}})
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match=r"mqtt\.enabled needs mqtt\.host"):
        parse({"mqtt": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"mqtt\.site"):
        parse({"mqtt": {"site": "my house"}})  # a space, or a '/' or '+', would break topics
    with pytest.raises(ConfigError, match=r"mqtt\.unit"):
        parse({"mqtt": {"unit": "a/b"}})
    with pytest.raises(ConfigError, match="cannot be 'arm'"):
        parse({"mqtt": {"unit": "arm"}})
    with pytest.raises(ConfigError, match=r"mqtt\.hots: unknown key"):
        parse({"mqtt": {"hots": "x"}})


def test_mqtt_password_from_env_then_credential(tmp_path: Path) -> None:
    (tmp_path / "mqtt_password").write_text("from-file\n")
    assert mqtt_password({"HOMESEC_MQTT_PASSWORD": "from-env",
                          "CREDENTIALS_DIRECTORY": str(tmp_path)}).value == "from-env"
    got = mqtt_password({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert got.value == "from-file" and "from-file" not in repr(got)
    assert mqtt_password({}).value is None


# ---- what the web UI shows ---------------------------------------------------------------------

def test_home_page_shows_disconnected_since_and_the_other_units(tmp_path: Path) -> None:
    cfg = parse({"camera": {"source": "demo"},
                 "paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
                 "web": {"auth": False},
                 "mqtt": {"enabled": True, "host": "broker.lan", "unit": "front"}})
    cfg.paths.runtime_dir.mkdir(parents=True)
    since = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    units.write_status(cfg.paths.runtime_dir, {"connected": False, "since": since,
                                               "error": "Connection refused", "site": "home",
                                               "unit": "front"})
    store = Store(cfg.paths.db_path)
    with store.transaction() as c:
        units.upsert_unit(c, "garage", time.time(), online=True, url="http://garage.local:8080")
        units.upsert_unit(c, "garage", time.time(), last_event_ts=since)  # keeps online and url
    store.close()
    client = create_app(cfg).test_client()
    page = client.get("/", headers={"Host": "127.0.0.1"}).data.decode()
    assert "MQTT: disconnected since 2026-03-04 05:06:07 (Connection refused)" in page
    assert '<a href="http://garage.local:8080">garage</a>' in page and "online" in page
    st = client.get("/api/v1/status", headers={"Host": "127.0.0.1"}).json["mqtt"]
    assert st["connected"] is False and st["units"][0]["online"] is True
    assert st["units"][0]["last_event_ts"] == since


def test_no_site_card_when_mqtt_is_off(tmp_path: Path) -> None:
    cfg = parse({"paths": {"state_dir": str(tmp_path / "s"), "runtime_dir": str(tmp_path / "r")},
                 "web": {"auth": False}})
    client = create_app(cfg).test_client()
    assert "MQTT" not in client.get("/", headers={"Host": "127.0.0.1"}).data.decode()
    assert client.get("/api/v1/status", headers={"Host": "127.0.0.1"}).json["mqtt"] is None


def test_commands_may_carry_a_code_that_never_shows_in_repr() -> None:
    cmd = parse_command(b'{"action": "DISARM", "code": "4321"}')
    assert cmd.code == "4321" and "4321" not in repr(cmd)
    assert parse_command(b'{"action": "DISARM", "code": 4321}').code == "4321"
    assert parse_command(b'{"action": "DISARM", "code": ""}').code is None


def test_with_a_pin_home_assistant_asks_for_a_code_the_config_does_not_contain() -> None:
    t = Topics("home", "garage", "homeassistant")
    panel = discovery_messages(t, "Garage", "http://g", pin="4321")[
        "homeassistant/alarm_control_panel/homesec_home_garage/alarm/config"]
    assert panel["code"] == "REMOTE_CODE" and panel["code_disarm_required"] is True
    assert panel["code_arm_required"] is False
    assert "{{ code }}" in panel["command_template"]
    assert "4321" not in json.dumps(panel)
    text = discovery_messages(t, "Garage", "http://g", pin="open sesame")[
        "homeassistant/alarm_control_panel/homesec_home_garage/alarm/config"]
    assert text["code"] == "REMOTE_CODE_TEXT"


def test_news_of_other_units() -> None:
    assert units.peer_news("front", "garage/availability", b"online") == {
        "unit": "garage", "online": True}
    assert units.peer_news("front", "garage/info", b'{"url": "http://g.local:8080"}') == {
        "unit": "garage", "url": "http://g.local:8080"}
    assert units.peer_news("front", "garage/event", b'{"start": 12.5}') == {
        "unit": "garage", "last_event_ts": 12.5}
    assert units.peer_news("front", "front/availability", b"online") is None  # ourselves
    assert units.peer_news("front", "garage/sensors", b"{}") is None
    for rest, payload in (("garage/availability", b"up"), ("a b/availability", b"online"),
                          ("garage/info", b'{"url": "file:///etc/passwd"}'),
                          ("garage/event", b'{"start": true}'), ("garage/event", b"[]")):
        with pytest.raises(BadMessage):
            units.peer_news("front", rest, payload)
