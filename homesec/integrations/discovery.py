"""Home Assistant MQTT discovery: the retained config messages that make one HA device per unit.

Field names follow Home Assistant's documentation of each MQTT platform (alarm_control_panel,
binary_sensor, image, sensor: https://www.home-assistant.io/integrations/<platform>.mqtt/) and of
discovery (topic `<discovery_prefix>/<component>/<node_id>/<object_id>/config`, a `device` with
`identifiers`, an `origin`). Full names, not the abbreviations, so a person can read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from homesec import __version__

AVAILABLE, NOT_AVAILABLE = "online", "offline"
MOTION_ON, MOTION_OFF = "ON", "OFF"


@dataclass(frozen=True)
class Topics:
    """Every topic one unit uses. Site-wide ones sit beside the units' own folders."""

    site: str
    unit: str
    prefix: str  # Home Assistant's discovery prefix

    @property
    def base(self) -> str:
        return f"homesec/{self.site}"

    @property
    def arm(self) -> str:
        """Retained JSON: the site's arm state (one for all units)."""
        return f"{self.base}/arm"

    @property
    def arm_set(self) -> str:
        """Commands ARM_AWAY / DISARM (from Home Assistant or anyone), for every unit."""
        return f"{self.base}/arm/set"

    def unit_topic(self, name: str, unit: str | None = None) -> str:
        return f"{self.base}/{unit or self.unit}/{name}"

    @property
    def availability(self) -> str:
        return self.unit_topic("availability")

    @property
    def alarm(self) -> str:
        """This unit's alarm state in Home Assistant's words (armed_away, triggered, ...)."""
        return self.unit_topic("alarm")

    @property
    def motion(self) -> str:
        return self.unit_topic("motion")

    @property
    def event(self) -> str:
        return self.unit_topic("event")

    @property
    def snapshot(self) -> str:
        return self.unit_topic("snapshot")

    @property
    def sensors(self) -> str:
        return self.unit_topic("sensors")

    @property
    def info(self) -> str:
        return self.unit_topic("info")

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth / last will ("online" when it (re)starts)."""
        return f"{self.prefix}/status"

    @property
    def node_id(self) -> str:
        return f"homesec_{self.site}_{self.unit}"

    def config(self, component: str, object_id: str) -> str:
        return f"{self.prefix}/{component}/{self.node_id}/{object_id}/config"


def _entity(t: Topics, object_id: str, name: str, device: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"{t.node_id}_{object_id}",
        "availability_topic": t.availability,
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "device": device,
        "origin": {"name": "homesec", "sw_version": __version__},
    }


def discovery_messages(t: Topics, camera_name: str, base_url: str, pin: str | None = None
                       ) -> dict[str, dict[str, Any]]:
    """{config topic: payload} for every entity of this unit.

    With a PIN, Home Assistant asks for a code when disarming and sends it in the command
    (`code: REMOTE_CODE`: checked here, on the box); the PIN itself never goes into a config."""
    device = {
        "identifiers": [t.node_id],
        "name": f"homesec {t.unit}",
        "manufacturer": "homesec",
        "model": f"camera '{camera_name}'",
        "sw_version": __version__,
        "configuration_url": base_url,
    }
    alarm = _entity(t, "alarm", "Alarm", device) | {
        "state_topic": t.alarm,
        "command_topic": t.arm_set,
        "supported_features": ["arm_away"],
        "code_arm_required": False,
        "code_disarm_required": False,
        "payload_arm_away": "ARM_AWAY",
        "payload_disarm": "DISARM",
    }
    if pin:
        alarm |= {
            "code": "REMOTE_CODE" if pin.isdigit() else "REMOTE_CODE_TEXT",
            "code_disarm_required": True,
            "command_template": '{"action": "{{ action }}", "code": "{{ code }}"}',
        }
    motion = _entity(t, "motion", "Motion", device) | {
        "state_topic": t.motion,
        "device_class": "motion",
        "payload_on": MOTION_ON,
        "payload_off": MOTION_OFF,
    }
    image = _entity(t, "snapshot", "Last event", device) | {
        "image_topic": t.snapshot,
        "content_type": "image/jpeg",
    }
    fps = _entity(t, "fps", "Frame rate", device) | {
        "state_topic": t.sensors,
        "value_template": "{{ value_json.fps }}",
        "unit_of_measurement": "fps",
        "state_class": "measurement",
        "icon": "mdi:camera-timer",
    }
    disk = _entity(t, "disk", "Disk use", device) | {
        "state_topic": t.sensors,
        "value_template": "{{ value_json.disk_used_pct }}",
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "icon": "mdi:harddisk",
    }
    return {
        t.config("alarm_control_panel", "alarm"): alarm,
        t.config("binary_sensor", "motion"): motion,
        t.config("image", "snapshot"): image,
        t.config("sensor", "fps"): fps,
        t.config("sensor", "disk"): disk,
    }


def encode(payload: dict[str, Any]) -> bytes:
    """JSON for the wire."""
    return json.dumps(payload, separators=(",", ":")).encode()
