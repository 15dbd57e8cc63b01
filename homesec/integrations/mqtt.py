"""The MQTT client of the capture daemon: Home Assistant discovery, this unit's state and events,
and the site's one arm state shared with the other units.

Why here and only here: the web runs in several gunicorn workers that come and go; one broker
connection per worker would publish everything several times and fight over the will message.
The daemon runs once per unit, so it owns the connection; the web writes an arm change to SQLite
and this thread, which looks at the arm state every POLL_S, publishes it.

Why a thread that never blocks anybody: paho's network loop runs in a thread of its own and only
puts what arrives into `inbox`; this thread does all the SQLite work. A broker that is down,
slow or refusing us costs the capture loop, the recorder and the mailer nothing: events wait in
`pending` (in order, never dropped while the daemon runs) and go out after the reconnect, which
paho retries with a backoff doubling up to mqtt.reconnect_max_s.

Conflicts between units: see homesec/integrations/site.py (largest stamp wins; a change made
after seeing another one always wins over it).

"Synced" (`synced` and `synced_ts` in mqtt.json): after a connect the unit waits SYNC_GRACE_S for
the retained site state, then adopts it or publishes its own; once that is over and the broker has
acknowledged everything sent since the connect, the post-connect sync is done. Cleared when the
connection goes. Tests and the status API read it instead of waiting out the grace.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import queue
import shutil
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from homesec.capture.status import read_status as read_capture_status
from homesec.config import Config
from homesec.integrations import units
from homesec.integrations.arm_adapter import ArmAdapter, LocalArm
from homesec.integrations.discovery import (
    AVAILABLE,
    MOTION_OFF,
    MOTION_ON,
    NOT_AVAILABLE,
    Topics,
    discovery_messages,
    encode,
)
from homesec.integrations.site import (
    BadMessage,
    SiteArm,
    next_stamp,
    parse_command,
    parse_site_arm,
    site_state,
    wins,
)
from homesec.storage.clips import clips_of
from homesec.storage.store import Store
from homesec.system.credentials import mqtt_password, mqtt_pin

log = logging.getLogger("homesec.integrations.mqtt")

POLL_S = 0.05  # how often the local arm state is read: most of the arm-to-all-units latency
SYNC_GRACE_S = 0.5  # after a connect, wait this long for the retained site state before ours
SENSORS_EVERY_S = 30.0  # frame rate and disk use for Home Assistant
KEEPALIVE_S = 30  # the broker declares us gone (last will) after 1.5x this without a packet
WRONG_CODE_LOCK_S = 5.0  # after a wrong PIN, disarm commands are refused this long
MAX_PENDING = 10_000  # event messages kept for an outage (ids only; a week of a busy door)
QOS = 1


class MqttBridge(threading.Thread):
    """One unit's broker connection. Started and stopped by the daemon like the other workers."""

    def __init__(self, cfg: Config, stop_event: threading.Event | None = None) -> None:
        super().__init__(name="mqtt", daemon=True)
        self.cfg = cfg
        mc = cfg.mqtt
        self.site, self.unit = mc.site, mc.unit_name()
        self.topics = Topics(self.site, self.unit, mc.discovery_prefix)
        self.shared_stop = stop_event or threading.Event()
        self._stop_now = threading.Event()
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.recorded: queue.Queue[tuple[str, int]] = queue.Queue()
        self.connected = False
        self.since = time.time()  # connected since / disconnected since
        self.last_error: str | None = None
        self.held: SiteArm | None = None  # the site state this unit holds (and applied)
        self._broker_stamp: tuple[float, str] | None = None  # newest site stamp heard from it
        self._sync_at: float | None = None  # monotonic time the post-connect grace ends
        self.synced_ts: float | None = None  # when the post-connect sync finished (None: not yet)
        self._unacked: list[paho.MQTTMessageInfo] = []  # sent since the connect, before synced
        self._event_sent: tuple[int, bytes] | None = None  # id, message of the last event sent
        self._seen_key: tuple[float, str] | None = None
        self._ha_sent: str | None = None
        self._motion = MOTION_OFF
        self._pending: list[tuple[str, int]] = []
        self._next_sensors = 0.0
        self._client: paho.Client | None = None
        self.store: Store | None = None
        self.adapter: ArmAdapter  # (made in run(), with the thread's own Store)
        self._pin = mqtt_pin().value or None
        self._locked_until = 0.0

    # ---- called from other threads ---------------------------------------------------------

    def attach(self, recorder: Any, clip_index: Any = None) -> None:
        """Hear of every event the recorder writes (start and end), after the commit, and of the
        first clip of each event once its row is written (the event message then gets its URL)."""
        previous = recorder.on_recorded

        def on_recorded(kind: str, event_id: int) -> None:
            if previous is not None:
                previous(kind, event_id)
            self.recorded.put((kind, event_id))

        recorder.on_recorded = on_recorded
        if clip_index is not None:
            def on_clip(event_id: int, part: int) -> None:
                if part == 1:
                    self.recorded.put(("clip", event_id))

            clip_index.on_registered = on_clip

    def stop(self, timeout: float = 3.0) -> None:
        """Say "offline", disconnect, end the thread."""
        self._stop_now.set()
        if self.is_alive():
            self.join(timeout)

    def _stopping(self) -> bool:
        return self._stop_now.is_set() or self.shared_stop.is_set()

    # ---- paho callbacks (paho's network thread): only hand over ----------------------------

    def _on_connect(self, client: paho.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.inbox.put(("refused", str(reason)))
            return
        t = self.topics
        client.subscribe([(t.arm, QOS), (t.arm_set, QOS), (t.ha_status, QOS),
                          (f"{t.base}/+/availability", QOS), (f"{t.base}/+/info", QOS),
                          (f"{t.base}/+/event", QOS)])
        self.inbox.put(("connected", None))

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self.inbox.put(("disconnected", str(reason)))

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        self.inbox.put(("message", msg))

    # ---- the thread ------------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        mc = self.cfg.mqtt
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"homesec-{self.site}-{self.unit}",
                             protocol=paho.MQTTv311)
        if mc.username:
            client.username_pw_set(mc.username, mqtt_password().value or None)
        if mc.tls:
            client.tls_set(ca_certs=str(mc.ca_file) if mc.ca_file else None,
                           cert_reqs=ssl.CERT_REQUIRED if mc.verify_tls else ssl.CERT_NONE)
            client.tls_insecure_set(not mc.verify_tls)
        client.will_set(self.topics.availability, NOT_AVAILABLE, qos=QOS, retain=True)
        client.reconnect_delay_set(1, max(1, int(mc.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _open_store(self) -> Store | None:
        while not self._stopping():
            try:
                return Store(self.cfg.paths.db_path)
            except sqlite3.Error as exc:
                log.error("MQTT: cannot open the database (%s); retrying", exc)
                self._stop_now.wait(5.0)
        return None

    def run(self) -> None:
        self.store = self._open_store()
        if self.store is None:
            return
        self.adapter = ArmAdapter(self.store, self.cfg.alarm.exit_delay_s)
        local = self.adapter.read()
        self._seen_key = local.key
        if not local.initial:  # (a change made here while the daemon was down counts)
            state = site_state(local.state)
            self.held = SiteArm(state, local.deadline_ts if state == "arming" else None,
                                local.changed_ts, self.unit, local.changed_by)
        mc = self.cfg.mqtt
        try:
            self._client = self._make_client()
        except (OSError, ssl.SSLError, ValueError) as exc:  # a missing or broken mqtt.ca_file
            self.last_error = f"cannot set up TLS with mqtt.ca_file {mc.ca_file}: {exc}"
            log.error("MQTT off until restart: %s", self.last_error)
            self._write_status()
            self.store.close()
            return
        self._write_status()
        log.info("MQTT: unit '%s' of site '%s', broker %s:%d%s", self.unit, self.site, mc.host,
                 mc.port, " (TLS)" if mc.tls else "")
        self._client.connect_async(mc.host, mc.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        try:
            while not self._stopping():
                try:
                    self._step()
                except sqlite3.Error as exc:
                    log.error("MQTT: database error (will retry): %s", exc)
                    self._stop_now.wait(1.0)
                except Exception:  # a bug must not end the integration for good
                    log.exception("MQTT: unexpected error (will retry)")
                    self._stop_now.wait(1.0)
        finally:
            self._shutdown()

    def _step(self) -> None:
        try:
            kind, data = self.inbox.get(timeout=POLL_S)
            self._handle(kind, data)
        except queue.Empty:
            pass
        self._handle_waiting()
        self._check_local()
        if not self.connected:
            self._collect_recorded()
            return
        if self._sync_at is not None and time.monotonic() >= self._sync_at:
            self._sync_at = None
        if self._sync_at is None and self._site_to_publish():
            assert self.held is not None
            self._publish(self.topics.arm, self.held.payload(self.site))
            self._broker_stamp = self.held.stamp
        self._finish_sync()
        self._collect_recorded()
        self._publish_events()
        if time.monotonic() >= self._next_sensors:
            self._publish_sensors()

    def _handle_waiting(self) -> None:
        while True:
            try:
                kind, data = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._handle(kind, data)

    def _site_to_publish(self) -> bool:
        return self.held is not None and (self._broker_stamp is None
                                          or self.held.stamp > self._broker_stamp)

    def _finish_sync(self) -> None:
        """Mark the post-connect sync done once the grace is over, the broker has acknowledged
        everything sent since the connect and the site state is settled.

        Why the acknowledgements make it exact: the broker sends the retained messages of a
        subscription before it reads our next packet, so the retained site state (if any) came
        in before the acknowledgement of anything published after the subscribe. The inbox is
        read once more after the check, and a site state that still has to go out is published
        (and acknowledged) first."""
        if self._sync_at is not None or self.synced_ts is not None or not self._all_acked():
            return
        self._handle_waiting()
        if not self.connected or self._unacked or self._site_to_publish():
            return  # (the next steps publish it and wait for the acknowledgement)
        self.synced_ts = time.time()
        log.info("MQTT: synced with site '%s' (arm state: %s)", self.site,
                 self.held.state if self.held is not None else "not set on any unit yet")
        self._write_status()

    def _shutdown(self) -> None:
        client = self._client
        if client is not None:
            if self.connected:
                info = client.publish(self.topics.availability, NOT_AVAILABLE, qos=QOS, retain=True)
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(1.0)
                client.disconnect()
            client.loop_stop()
        with contextlib.suppress(OSError):
            (self.cfg.paths.runtime_dir / units.STATUS_NAME).unlink()
        if self.store is not None:
            self.store.close()

    # ---- connection state ------------------------------------------------------------------

    def _write_status(self) -> None:
        mc = self.cfg.mqtt
        try:
            units.write_status(self.cfg.paths.runtime_dir, {
                "connected": self.connected, "since": self.since, "error": self.last_error,
                "broker": f"{mc.host}:{mc.port}", "site": self.site, "unit": self.unit,
                "pending_events": len(self._pending),
                "synced": self.synced_ts is not None, "synced_ts": self.synced_ts,
            })
        except OSError as exc:
            log.warning("MQTT: cannot write its status file: %s", exc)

    def _handle(self, kind: str, data: Any) -> None:
        if kind == "connected":
            self.connected, self.since, self.last_error = True, time.time(), None
            log.info("MQTT: connected to %s:%d", self.cfg.mqtt.host, self.cfg.mqtt.port)
            self._sync_at = time.monotonic() + SYNC_GRACE_S
            self.synced_ts, self._unacked = None, []
            self._broker_stamp = None
            self._announce()
            self._write_status()
        elif kind == "refused" or (kind == "disconnected" and self.connected):
            # (paho reports a refused connect twice: refused, then disconnected; keep the reason)
            if self.connected or data != self.last_error:
                log.warning("MQTT: %s (%s); reconnecting with backoff",
                            "disconnected" if kind == "disconnected" else "connection refused", data)
            if self.connected:
                self.since = time.time()
            self.connected, self.last_error = False, str(data)
            self.synced_ts, self._unacked = None, []
            self._write_status()
        elif kind == "message":
            self._message(data)

    def _publish(self, topic: str, payload: bytes | str, retain: bool = True) -> bool:
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        if self.connected and self.synced_ts is None:
            self._unacked.append(info)
        return info.rc == paho.MQTT_ERR_SUCCESS

    def _all_acked(self) -> bool:
        """Has the broker acknowledged (PUBACK) every message sent since the connect? A message
        paho could not send counts as not acknowledged: its connection is gone, and the
        reconnect starts the sync again."""
        waiting = []
        for info in self._unacked:
            try:
                if not info.is_published():
                    waiting.append(info)
            except (RuntimeError, ValueError):
                waiting.append(info)
        self._unacked = waiting
        return not waiting

    def _announce(self) -> None:
        """Everything Home Assistant and the other units need after a (re)connect or when Home
        Assistant (re)starts: discovery configs, availability, this unit's states."""
        for topic, payload in discovery_messages(self.topics, self.cfg.camera.name,
                                                 self.cfg.web.base_url, self._pin).items():
            self._publish(topic, encode(payload))
        self._publish(self.topics.info, encode({"unit": self.unit, "site": self.site,
                                                "url": self.cfg.web.base_url}))
        self._publish(self.topics.availability, AVAILABLE)
        local = self.adapter.read()
        self._publish(self.topics.alarm, local.ha_state)
        self._ha_sent = local.ha_state
        self._publish(self.topics.motion, self._motion)
        self._next_sensors = time.monotonic() + 2.0  # once the capture loop reports a frame rate

    # ---- the arm state ---------------------------------------------------------------------

    def _check_local(self) -> None:
        """A change written to SQLite by anyone here (web, API, CLI) becomes the site's state."""
        local = self.adapter.read()
        if local.key != self._seen_key:
            self._seen_key = local.key
            state = site_state(local.state)
            new = SiteArm(state, local.deadline_ts if state == "arming" else None,
                          next_stamp(self.held, local.changed_ts), self.unit, local.changed_by)
            if self.held is None or not new.same_state(self.held):
                self.held = new
                log.info("arm state %s by %s: publishing to the site", state, local.changed_by)
        if (self.connected and local.ha_state != self._ha_sent
                and self._publish(self.topics.alarm, local.ha_state)):
            self._ha_sent = local.ha_state

    def _remote_arm(self, payload: bytes) -> None:
        arm = parse_site_arm(payload, self.site, time.time(), self.cfg.mqtt.max_clock_skew_s)
        self._broker_stamp = arm.stamp
        self._check_local()  # a change written here since the last poll competes too
        if not wins(arm, self.held):
            return  # ours is newer: the step republishes it
        local = self.adapter.read()
        mine = SiteArm(site_state(local.state), local.deadline_ts, local.changed_ts, self.unit, "")
        if not mine.same_state(arm):
            by = (f"Home Assistant via unit {arm.unit}" if arm.by == "Home Assistant" else
                  f"unit {arm.unit}: {arm.by}")[:200]
            # The key our own write left (not a fresh read: a change the web wrote a moment
            # later must still look like a local change and be published).
            self._seen_key = self.adapter.apply_remote(arm, by=by).key
            log.info("arm state %s from unit %s (%s)", arm.state, arm.unit, arm.by)
        self.held = arm

    def _command(self, payload: bytes, retained: bool) -> None:
        cmd = parse_command(payload)
        if retained:
            raise BadMessage("a retained command (it would re-run on every connect); "
                             "clear it with: mosquitto_pub -r -n -t " + self.topics.arm_set)
        if cmd.action == "DISARM" and self._pin is not None:
            if time.monotonic() < self._locked_until:
                raise BadMessage(f"DISARM refused: a wrong code came less than "
                                 f"{WRONG_CODE_LOCK_S:g} s ago")
            if cmd.code is None:
                raise BadMessage("DISARM without the code (a PIN is set: mqtt_pin)")
            if not hmac.compare_digest(cmd.code.encode(), self._pin.encode()):
                self._locked_until = time.monotonic() + WRONG_CODE_LOCK_S
                raise BadMessage("DISARM with a wrong code")
        before = self.adapter.read()
        after: LocalArm = self.adapter.command(cmd.action, by="Home Assistant")
        if after.key != before.key:
            log.info("%s from MQTT (Home Assistant)", cmd.action)

    # ---- incoming --------------------------------------------------------------------------

    def _message(self, msg: paho.MQTTMessage) -> None:
        t = self.topics
        topic = msg.topic
        try:
            if topic == t.arm:
                if msg.payload:  # an empty retained message clears the topic: nothing to do
                    self._remote_arm(msg.payload)
            elif topic == t.arm_set:
                self._command(msg.payload, bool(msg.retain))
            elif topic == t.ha_status:
                if msg.payload == b"online":
                    log.info("MQTT: Home Assistant (re)started: announcing this unit again")
                    self._announce()
            elif topic.startswith(t.base + "/"):
                self._peer(topic[len(t.base) + 1:], msg.payload)
        except BadMessage as exc:
            log.warning("MQTT: ignored a message on %s: %s", topic, exc)

    def _peer(self, rest: str, payload: bytes) -> None:
        """News of another unit of the site, for the web UI's list."""
        news = units.peer_news(self.unit, rest, payload)
        if news is not None:
            assert self.store is not None
            with self.store.transaction() as c:
                units.upsert_unit(c, seen_ts=time.time(), **news)

    # ---- events, sensors -------------------------------------------------------------------

    def _collect_recorded(self) -> None:
        while True:
            try:
                item = self.recorded.get_nowait()
            except queue.Empty:
                break
            if len(self._pending) >= MAX_PENDING:
                # (only in an outage of many days: the events themselves are in SQLite)
                log.warning("MQTT: %d event messages waiting; dropping the oldest", MAX_PENDING)
                self._pending.pop(0)
            self._pending.append(item)
            if not self.connected and len(self._pending) % 10 == 1:
                self._write_status()

    def _event_payload(self, ev: Any) -> dict[str, Any]:
        base = self.cfg.web.base_url.rstrip("/")
        api = f"{base}/api/v1/events/{ev.id}"
        return {
            "id": ev.id, "site": self.site, "unit": self.unit, "camera": ev.camera,
            "start": ev.start_ts, "end": ev.end_ts,
            "in_progress": ev.end_ts is None and not ev.interrupted, "armed": ev.armed,
            "boxes": ev.boxes, "peak_area_pct": round(ev.peak_area_pct, 3),
            "snapshot_url": f"{api}/snapshot.jpg" if ev.snapshot else None,
            # (the web UI's link to the first clip, homesec/web/history.py clip_url)
            "clip_url": f"{api}/clip.mp4" if clips_of(self.store, ev.id) else None,
        }

    def _publish_events(self) -> None:
        assert self.store is not None
        sent_any = False
        while self._pending and self.connected:
            kind, event_id = self._pending[0]
            ev = self.store.event(event_id)
            if kind == "clip":
                # The event again, now with its clip_url; only while it is the last event sent
                # (the topic is retained: an older event must not replace a newer one).
                payload = encode(self._event_payload(ev)) if ev is not None else None
                if payload is not None and self._event_sent is not None and (
                        self._event_sent[0] == event_id and payload != self._event_sent[1]):
                    if not self._publish(self.topics.event, payload):
                        return
                    self._event_sent = (event_id, payload)
                self._pending.pop(0)
                continue
            if ev is not None:
                payload = encode(self._event_payload(ev))
                if not self._publish(self.topics.event, payload):
                    return  # the connection went: keep it for the reconnect
                self._event_sent = (event_id, payload)
                self._motion = MOTION_ON if kind == "start" else MOTION_OFF
                if kind == "end" and ev.snapshot:
                    self._publish_snapshot(self.cfg.paths.media / ev.snapshot)
            self._pending.pop(0)
            sent_any = True
        if sent_any:
            self._publish(self.topics.motion, self._motion)
            self._write_status()

    def _publish_snapshot(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("MQTT: snapshot %s not published: %s", path.name, exc)
            return
        self._publish(self.topics.snapshot, data)

    def _publish_sensors(self) -> None:
        self._next_sensors = time.monotonic() + SENSORS_EVERY_S
        st = read_capture_status(self.cfg.paths.runtime_dir) or {}
        fps = 0.0 if st.get("stale", True) else float(st.get("fps") or 0.0)
        try:
            du = shutil.disk_usage(self.cfg.paths.media if self.cfg.paths.media.exists()
                                   else self.cfg.paths.state_dir)
            disk = round(100.0 * du.used / du.total, 1) if du.total else None
        except OSError:
            disk = None
        self._publish(self.topics.sensors, encode({"fps": fps, "disk_used_pct": disk}))
