"""Real parts for the MQTT tests and benchmark: Debian's mosquitto on a free loopback port with a
config and password file made here (optionally TLS with a CA made here), a watcher client that
keeps the last message of every topic, and `homesec run` daemons on the demo scene.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.mail_support import Certs, free_port, write_toml

MOSQUITTO = "/usr/sbin/mosquitto"
USER = "homesec"
PASSWORD = "broker pass phrase 42"
HA_USER = "hass"
HA_PASSWORD = "home assistant secret"


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists() and shutil.which("mosquitto_passwd") is not None


class Broker:
    """mosquitto with a password file, no persistence (a restart loses retained messages, as a
    broker on a tmpfs or a reinstalled one would: the units must republish)."""

    def __init__(self, folder: Path, certs: Certs | None = None, port: int | None = None) -> None:
        self.folder = folder
        self.certs = certs
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.passwd = folder / "passwd"
        self.set_users({USER: PASSWORD, HA_USER: HA_PASSWORD})
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous false",
                 f"password_file {self.passwd}", "persistence false",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot read tmp_path
        if certs is not None:
            lines += [f"cafile {certs.ca}", f"certfile {certs.cert}", f"keyfile {certs.key}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def set_users(self, users: dict[str, str]) -> None:
        """Write the password file (takes effect at start or reload())."""
        self.passwd.write_text("")
        os.chmod(self.passwd, 0o600)
        for user, pw in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(self.passwd), user, pw], check=True,
                           capture_output=True)

    def reload(self) -> None:
        """SIGHUP: mosquitto rereads its password file."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def start(self, timeout: float = 10.0) -> Broker:
        """Run it and wait until it accepts TCP connections."""
        self.log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start: " + (
                        self.folder / "mosquitto.log").read_text()) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Watcher:
    """A client (as Home Assistant would be) that keeps the last message of every topic under
    its subscriptions, and can publish."""

    def __init__(self, broker: Broker, topics: tuple[str, ...] = ("#",),
                 user: str = HA_USER, password: str = HA_PASSWORD) -> None:
        self.messages: dict[str, paho.MQTTMessage] = {}
        self.history: list[tuple[float, str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watcher-{os.getpid()}-{id(self)}")
        c.username_pw_set(user, password)
        if broker.certs is not None:
            c.tls_set(ca_certs=str(broker.certs.ca), cert_reqs=ssl.CERT_REQUIRED)

        def on_connect(client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                client.subscribe([(t, 1) for t in topics])
                self.connected.set()

        def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
            with self.lock:
                self.messages[msg.topic] = msg
                self.history.append((time.monotonic(), msg.topic, msg.payload, bool(msg.retain)))

        c.on_connect = on_connect
        c.on_message = on_message
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        self.client = c
        if not self.connected.wait(10):
            raise RuntimeError("watcher could not connect")

    def payload(self, topic: str) -> bytes | None:
        with self.lock:
            m = self.messages.get(topic)
            return None if m is None else m.payload

    def topics(self) -> list[str]:
        with self.lock:
            return list(self.messages)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_section(broker: Broker, unit: str, site: str = "home", **kw: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                         "username": USER, "site": site, "unit": unit, "reconnect_max_s": 1.0}
    if broker.certs is not None:
        m.update({"tls": True, "ca_file": str(broker.certs.ca)})
    m.update(kw)
    return m


def unit_config(root: Path, broker: Broker, unit: str, site: str = "home",
                **sections: dict[str, Any]) -> dict[str, Any]:
    """A demo-camera daemon's config with everything under root/unit."""
    d = root / unit
    data: dict[str, Any] = {
        "camera": {"source": "demo", "name": f"cam {unit}", "width": 640, "height": 360,
                   "lores_width": 320, "fps": 10, "realtime": True},
        "events": {"confirm_s": 0.2, "post_motion_s": 1.0},
        "paths": {"state_dir": str(d / "state"), "runtime_dir": str(d / "run")},
        "alarm": {"exit_delay_s": 0},
        "web": {"base_url": f"http://{unit}.test:8080", "bind": "127.0.0.1"},
        "mqtt": mqtt_section(broker, unit, site),
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


class Unit:
    """`homesec run` as its own process (what systemd runs), with HOMESEC_MQTT_PASSWORD set."""

    def __init__(self, root: Path, data: dict[str, Any], env: dict[str, str] | None = None,
                 argv: list[str] | None = None) -> None:
        self.name = data["mqtt"]["unit"]
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.config = write_toml(self.dir / "config.toml", data)
        self.db = Path(data["paths"]["state_dir"]) / "homesec.db"
        self.runtime = Path(data["paths"]["runtime_dir"])
        self.env = {**os.environ, "HOMESEC_MQTT_PASSWORD": PASSWORD, **(env or {})}
        self.argv = argv or [sys.executable, "-m", "homesec", "run", "--config", str(self.config)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Unit:
        self.log = open(self.dir / "daemon.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        return self

    def log_text(self) -> str:
        return (self.dir / "daemon.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.01) -> Any:
    """The first truthy value of predicate() before the deadline, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
