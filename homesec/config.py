"""One typed, validated configuration model for every homesec process.

Why a strict model: a home-security box that silently ignores a misspelt key ("post_motion" for
"post_motion_s") would look configured and not be. Every section forbids unknown keys, every field
has a default, bounds and a description, and `load()` turns any problem into one `ConfigError`
that names the file, the key and the value. The checking itself is homesec/config_schema.py
(not pydantic: it cost every homesec process ~20 MB, see docs/memory.md).
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from homesec.config_schema import (
    Field,
    Section,
    ValidationError,
    field_validator,
    model_validator,
    validate,
)

DEFAULT_STATE_DIR = "/var/lib/homesec"
DEFAULT_RUNTIME_DIR = "/run/homesec"
DEFAULT_CONFIG_PATH = "/etc/homesec/config.toml"
# Who may reach the web UI by default: this machine, the private (RFC 1918, IPv6 ULA) and
# link-local ranges of a home network, and 100.64.0.0/10 (carrier-grade NAT space, which Tailscale
# uses for its VPN addresses). Never the internet.
DEFAULT_ALLOW_NETWORKS = (
    "127.0.0.0/8", "::1/128",
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    "169.254.0.0/16", "fe80::/10",
    "100.64.0.0/10",
)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names file, key and value."""


Coord = Annotated[float, Field(ge=0.0, le=1.0)]


class MaskConfig(Section):
    """An excluded region in 0..1 frame coordinates: either `rect` or `polygon`."""

    rect: list[Coord] | None = Field(
        default=None, description="[x, y, w, h] in 0..1 of frame width/height"
    )
    polygon: list[list[Coord]] | None = Field(
        default=None, description="[[x, y], ...] at least 3 points, 0..1"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> MaskConfig:
        if (self.rect is None) == (self.polygon is None):
            raise ValueError("a mask needs exactly one of 'rect' or 'polygon'")
        if self.rect is not None and len(self.rect) != 4:
            raise ValueError("'rect' is [x, y, w, h]")
        if self.polygon is not None and (
            len(self.polygon) < 3 or any(len(p) != 2 for p in self.polygon)
        ):
            raise ValueError("'polygon' is a list of at least 3 [x, y] points")
        return self


class CameraConfig(Section):
    """Where frames come from."""

    source: Literal["demo", "opencv", "picamera2"] = Field(
        default="picamera2", description="demo scene, an OpenCV device/URL/file, or a Pi camera"
    )
    name: str = Field(default="Home", min_length=1, max_length=60, description="shown in alerts")
    device: str = Field(
        default="",
        description="opencv source: '/dev/video0', a camera index '0', an rtsp:// or http:// URL, "
        "or a video file",
    )
    loop: bool = Field(default=False, description="opencv file source: start again at the end")
    realtime: bool = Field(
        default=True, description="demo/file sources: pace frames at `fps` like a live camera"
    )
    width: int = Field(default=1280, ge=160, le=4096, description="main stream width (snapshots)")
    height: int = Field(default=720, ge=120, le=3072, description="main stream height")
    lores_width: int = Field(
        default=320, ge=64, le=1280, description="picamera2 lores (detection) stream width"
    )
    lores_height: int = Field(default=240, ge=48, le=960, description="lores stream height")
    fps: float = Field(default=15.0, gt=0.0, le=120.0, description="frames per second asked for")
    seed: int = Field(default=1, ge=0, description="demo scene: random seed (deterministic)")
    reconnect_max_s: float = Field(
        default=30.0, ge=0.1, le=3600.0, description="longest wait between reopen attempts"
    )
    decoder: Literal["pyav", "opencv"] = Field(
        default="pyav",
        description="opencv source, files and network streams: decode with PyAV straight to the "
        "luma plane, or with OpenCV (for a stream PyAV cannot open); USB cameras always use OpenCV",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        default="tcp",
        description="rtsp:// cameras: 'tcp' carries the video inside the RTSP connection (no "
        "lost packets, passes NAT, Wi-Fi and firewalls; what most NVRs use), 'udp' as separate "
        "RTP packets (for a camera that refuses TCP)",
    )
    frame_timeout_s: float = Field(
        default=3.0, ge=0.5, le=20.0,
        description="picamera2: no frame for this long (at least 4 frame times) means the camera "
        "hung; it is closed and reopened (kept well under the unit's WatchdogSec=30)",
    )

    @model_validator(mode="after")
    def _device_for_opencv(self) -> CameraConfig:
        if self.source == "opencv" and not self.device:
            raise ValueError("camera.source = 'opencv' needs camera.device")
        return self

    @model_validator(mode="after")
    def _lores_fits_main(self) -> CameraConfig:
        # picamera2 refuses a lores stream larger than main ("lores stream dimensions may not
        # exceed main stream"): every open would fail, so say it here.
        if self.source == "picamera2" and (
                self.lores_width > self.width or self.lores_height > self.height):
            raise ValueError(
                f"camera.lores_width x lores_height ({self.lores_width}x{self.lores_height}) must "
                f"not exceed camera.width x height ({self.width}x{self.height}): picamera2 "
                "refuses a lores stream larger than the main stream")
        return self


class MotionConfig(Section):
    """Motion detector settings; the defaults are meant to work without per-scene tuning."""

    detect_width: int = Field(
        default=320, ge=80, le=1280, description="frames are downscaled to this width first"
    )
    sensitivity: float = Field(
        default=1.0,
        ge=0.1,
        le=10.0,
        description="scales the threshold over the measured noise: higher finds fainter motion",
    )
    min_area_pct: float = Field(
        default=0.15, ge=0.0, le=50.0, description="ignore changed regions smaller than this"
    )
    light_change_pct: float = Field(
        default=35.0,
        ge=5.0,
        le=100.0,
        description="a change over this share of the frame (in %) whose texture persists is a light "
        "change, not motion; a quarter of it suffices when nearly all its texture persists",
    )
    masks: list[MaskConfig] = Field(default_factory=list, description="regions never examined")
    learn_restless: bool = Field(
        default=True,
        description="raise the threshold where the scene is always moving (leaves, water)",
    )


class EventsConfig(Section):
    """How detector results become events."""

    confirm_s: float = Field(
        default=0.3, ge=0.0, le=10.0, description="motion must last this long to start an event"
    )
    post_motion_s: float = Field(
        default=5.0, ge=0.5, le=600.0, description="an event ends after this long without motion"
    )
    max_event_s: float = Field(
        default=600.0, ge=10.0, le=86400.0, description="a longer event is closed and a new one begun"
    )
    snapshot_quality: int = Field(default=85, ge=30, le=100, description="JPEG quality")
    thumb_width: int = Field(default=320, ge=64, le=1280, description="thumbnail width in pixels")
    keep_days: float = Field(
        default=30.0, ge=1.0, le=3650.0, description="events older than this are deleted with their pictures"
    )
    min_free_pct: float = Field(
        default=10.0, ge=0.0, le=90.0,
        description="when the disk has less free space than this, the oldest clips, then "
        "snapshots are deleted (only if that can help)",
    )


class ClipsConfig(Section):
    """Event video clips: H.264 in MP4 with pre-roll (see docs/clips.md)."""

    enabled: bool = Field(
        default=True, description="record a video clip of every event (off: nothing is encoded)"
    )
    pre_roll_s: float = Field(
        default=3.0, ge=0.0, le=30.0,
        description="seconds of video kept from before the motion was confirmed",
    )
    max_s: float = Field(
        default=120.0, ge=10.0, le=3600.0,
        description="a longer event goes on in the next clip (all are listed on the event)",
    )
    width: int = Field(
        default=0, ge=0, le=4096,
        description="clip width in pixels (height keeps the aspect); 0 = camera.width; the Pi "
        "camera records its main stream (camera.width) instead",
    )
    fps: float = Field(
        default=15.0, ge=1.0, le=60.0, description="clip frame rate, at most camera.fps"
    )
    copy_h264: bool = Field(
        default=True,
        description="a file or network camera that sends H.264: its own video is copied into "
        "the clips, not re-encoded (its size, rate and quality; no encoder memory or CPU); only "
        "with width 0; false = always re-encode",
    )
    crf: int = Field(
        default=26, ge=15, le=40,
        description="software encoder quality (lower = better and bigger), on x264's constant-rate-factor "
        "scale; encoded at the constant quantiser crf - 3, which needs less memory",
    )


class StorageConfig(Section):
    """How much of the disk the media (clips, snapshots) may take."""

    max_gb: float = Field(
        default=0.0, ge=0.0, le=100000.0,
        description="size budget of the media in GB (0 = no limit besides events.min_free_pct); "
        "oldest clips go first, then oldest snapshots; event rows stay",
    )


class PathsConfig(Section):
    """Where files go. Defaults suit systemd's StateDirectory/RuntimeDirectory."""

    state_dir: Path = Field(
        default=Path(DEFAULT_STATE_DIR), description="SQLite database and media"
    )
    media_dir: Path | None = Field(default=None, description="snapshots; default state_dir/media")
    runtime_dir: Path = Field(
        default=Path(DEFAULT_RUNTIME_DIR), description="volatile files (live frame, status)"
    )

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.state_dir / "homesec.db"

    @property
    def media(self) -> Path:
        """The media directory actually used."""
        return self.media_dir if self.media_dir is not None else self.state_dir / "media"


class ScheduleConfig(Section):
    """One scheduled arm or disarm (`[[alarm.schedule]]`), in the box's local time."""

    action: Literal["arm", "disarm"] = Field(description="what happens at `time`")
    time: str = Field(description="local time HH:MM (24 h)")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        min_length=1, description="days of the week it applies to",
    )

    @field_validator("time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        hh, _, mm = value.partition(":")
        if not (len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit()
                and int(hh) < 24 and int(mm) < 60):
            raise ValueError(f"time must be HH:MM, 00:00 to 23:59 (got {value!r})")
        return value


class AlarmConfig(Section):
    """Arming behaviour."""

    exit_delay_s: int = Field(
        default=60, ge=0, le=3600, description="seconds between 'arm' and armed"
    )
    entry_delay_s: int = Field(
        default=0, ge=0, le=600,
        description="seconds between motion while armed and the alert (disarm in time: none)",
    )
    triggered_s: int = Field(
        default=600, ge=10, le=86400,
        description="how long 'triggered' lasts after the alert before it is back to 'armed'",
    )
    camera_lost_alert_s: int = Field(
        default=60, ge=5, le=86400, description="alert when the camera has been lost this long"
    )
    covered_alert_s: float = Field(
        default=5.0, ge=1.0, le=300.0,
        description="alert when the picture has stayed uniform (covered, blinded) this long",
    )
    disk_alert_free_pct: float = Field(
        default=5.0, ge=0.0, le=50.0, description="alert when the disk has less free space (0 = off)"
    )
    timezone: str = Field(
        default="", description="IANA zone for schedules, e.g. 'Europe/Berlin'; '' = the box's"
    )
    schedule: list[ScheduleConfig] = Field(
        default_factory=list, description="scheduled arm/disarm changes ([[alarm.schedule]])"
    )
    arm_requests_per_min: int = Field(
        default=30, ge=1, le=600,
        description="arm/disarm/snooze requests allowed per client and minute (then HTTP 429)",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (see `timedatectl list-timezones`)"
                                 ) from None
        return value


class MailConfig(Section):
    """Alert email settings (the password never lives here: see README)."""

    enabled: bool = Field(default=False, description="send alert emails while armed")
    host: str = Field(default="", description="SMTP server host name")
    port: int = Field(default=587, ge=1, le=65535, description="465 = implicit TLS, 587 = STARTTLS")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls, tls (implicit) or none (local relays only)"
    )
    username: str = Field(default="", description="SMTP login; empty = no AUTH")
    sender: str = Field(default="", description="From: address")
    recipients: list[str] = Field(default_factory=list, description="To: addresses")
    min_interval_s: float = Field(
        default=60.0, ge=0.0, le=86400.0, description="at most one email per this many seconds"
    )
    timeout_s: float = Field(default=20.0, ge=1.0, le=300.0, description="SMTP network timeout")
    verify_tls: bool = Field(default=True, description="verify the server certificate")
    ca_file: Path | None = Field(default=None, description="extra CA bundle to trust")
    catch_dir: Path | None = Field(
        default=None, description="demo/testing: write .eml files here instead of sending"
    )
    max_message_bytes: int = Field(
        default=1_000_000, ge=100_000, le=25_000_000, description="size cap of one email"
    )
    retry_initial_s: float = Field(
        default=10.0, ge=0.1, le=3600.0, description="first wait after a failed send; doubles each time"
    )
    retry_max_s: float = Field(
        default=300.0, ge=1.0, le=86400.0, description="longest wait between send attempts"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        """A password in a config file ends up in backups, bug reports and screenshots: refuse it
        and say where it goes instead. The value itself is never echoed."""
        if isinstance(data, dict) and any("password" in str(k).lower() for k in data):
            raise ValueError(
                "the SMTP password must not be in the config file: set the environment variable "
                "HOMESEC_SMTP_PASSWORD, or under systemd put it in a credential named smtp_password "
                "(LoadCredential=smtp_password:/etc/homesec/smtp_password, read from "
                "$CREDENTIALS_DIRECTORY/smtp_password)"
            )
        return data

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> MailConfig:
        if self.enabled and not self.recipients:
            raise ValueError("mail.enabled needs at least one address in mail.recipients")
        if self.enabled and not (self.host or self.catch_dir):
            raise ValueError("mail.enabled needs mail.host (or mail.catch_dir for testing)")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("mail.retry_max_s must be at least mail.retry_initial_s")
        return self

    @model_validator(mode="after")
    def _no_cleartext_login(self) -> MailConfig:
        """AUTH without TLS sends the password readable to anyone on the path: only to a relay
        on this machine."""
        local = self.host in ("localhost", "::1") or self.host.startswith("127.")
        if self.security == "none" and self.username and self.host and not local:
            raise ValueError(
                f"mail.security = 'none' with mail.username would send the password unencrypted "
                f"to {self.host}: use security = 'starttls' (port 587) or 'tls' (port 465)"
            )
        return self

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for addr in value:
            if "@" not in addr or any(c.isspace() for c in addr):
                raise ValueError(f"not an email address: {addr!r}")
        return value


class WebConfig(Section):
    """The web UI and JSON API."""

    bind: str = Field(
        default="0.0.0.0", description="address the web UI listens on (nginx on the Pi, else gunicorn)"
    )
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port")
    base_url: str = Field(
        default="http://homesec.local:8080", description="used for links in alert emails"
    )
    auth: bool = Field(default=True, description="require login (turn off only on a trusted LAN)")
    trust_networks: list[str] = Field(
        default_factory=list, description="CIDRs whose clients skip login, e.g. 192.168.1.0/24"
    )
    session_days: int = Field(
        default=30, ge=1, le=365, description="days a login lasts, from the login (use does not extend it)"
    )
    workers: int = Field(default=2, ge=1, le=8, description="gunicorn worker processes")
    threads: int = Field(
        default=16, ge=4, le=64,
        description="threads per gunicorn worker; each live-view viewer holds one while watching",
    )
    live_max_s: float = Field(
        default=900.0, ge=10.0, le=86400.0,
        description="a live MJPEG stream ends after this long (the page reconnects if still open)",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="HTTPS (nginx on the Pi): certificate chain file (PEM), e.g. from `tailscale "
        "cert` or a local CA; with tls_key, plain HTTP on web.port is redirected to HTTPS",
    )
    tls_key: Path | None = Field(
        default=None, description="HTTPS: the certificate's private key file (PEM), root-only"
    )
    allow_networks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOW_NETWORKS), min_length=1,
        description="CIDRs that may reach the web UI at all (nginx and systemd's IPAddressAllow=); "
        "default: loopback, private, link-local and CGNAT/Tailscale ranges",
    )

    @field_validator("trust_networks", "allow_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not a network in CIDR notation: {net!r}") from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> WebConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("web.tls_cert and web.tls_key go together: set both or neither")
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value is not None and not value.is_absolute():
                raise ValueError(f"web.{name} must be an absolute path (got {str(value)!r})")
        return self


NAME_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"  # site and unit names: MQTT topic levels, HA unique ids


class MqttConfig(Section):
    """Home Assistant and the other units of the site, through the owner's MQTT broker (the
    password never lives here: see README)."""

    enabled: bool = Field(default=False, description="connect to the MQTT broker")
    host: str = Field(default="", description="broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="1883 plain, 8883 with TLS")
    tls: bool = Field(default=False, description="connect with TLS")
    verify_tls: bool = Field(default=True, description="verify the broker's certificate (TLS)")
    ca_file: Path | None = Field(default=None, description="CA bundle to trust; unset = system CAs")
    username: str = Field(default="", description="broker login; empty = anonymous")
    site: str = Field(default="home", pattern=NAME_PATTERN,
                      description="units with the same site share one arm state")
    unit: str = Field(default="", pattern=r"^([A-Za-z0-9_-]{1,40})?$",
                      description="this unit's name in the site; empty = the host name")
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_/-]{1,80}$",
                                  description="Home Assistant's MQTT discovery prefix")
    reconnect_max_s: float = Field(default=30.0, ge=1.0, le=3600.0,
                                   description="longest wait between reconnect attempts")
    max_clock_skew_s: float = Field(
        default=60.0, ge=1.0, le=86400.0,
        description="an arm change stamped further than this in the future is ignored",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        """Like [mail]: a password in the config file leaks; say where it goes instead."""
        if isinstance(data, dict) and any("password" in str(k).lower() for k in data):
            raise ValueError(
                "the MQTT password must not be in the config file: set the environment variable "
                "HOMESEC_MQTT_PASSWORD, or under systemd put it in a credential named mqtt_password "
                "(LoadCredential=mqtt_password:/etc/homesec/mqtt_password)"
            )
        return data

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> MqttConfig:
        if self.enabled and not self.host:
            raise ValueError("mqtt.enabled needs mqtt.host")
        if self.unit == "arm":
            raise ValueError("mqtt.unit cannot be 'arm': homesec/<site>/arm is the site's arm state")
        return self

    def unit_name(self) -> str:
        """`unit`, or the host name made into a topic-safe name."""
        if self.unit:
            return self.unit
        import re
        import socket

        name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:40]
        return name if name and name != "arm" else "homesec"


class Config(Section):
    """The whole configuration file."""

    camera: CameraConfig = Field(default_factory=CameraConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    alarm: AlarmConfig = Field(default_factory=AlarmConfig)
    mail: MailConfig = Field(default_factory=MailConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)


def _format_error(path: Path | str, exc: ValidationError, data: dict[str, Any]) -> str:
    """One line per problem: file, dotted key, what is wrong, the value given."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) if loc else "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the example config)"
        if "input" in err and err["type"] != "extra_forbidden" and not isinstance(
            err["input"], dict
        ):
            msg += f" (got {err['input']!r})"
        lines.append(f"{path}: {key}: {msg}")
    return "\n".join(lines)


def parse(data: dict[str, Any], source: Path | str = "<config>") -> Config:
    """Validate a dict (as read from TOML) into a Config, or raise ConfigError."""
    try:
        return validate(Config, data)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc, data)) from None


def load(path: Path | str | None) -> Config:
    """Read and validate a TOML file; `None` gives the defaults."""
    if path is None:
        return Config()
    from homesec.config_read import ConfigReadError, read_config_text

    path = Path(path)
    try:
        text = read_config_text(path)  # a regular file of sane size, UTF-8
    except ConfigReadError as exc:
        raise ConfigError(str(exc)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # "a = [[[[...": tomllib recurses once per level
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    return parse(data, path)


def summary(cfg: Config) -> str:
    """A one-line description for `check-config` and start-up logs (no secrets)."""
    from homesec.system.credentials import redact_url

    cam = cfg.camera
    src = cam.source if cam.source != "opencv" else f"opencv {redact_url(cam.device)}"
    mail = (
        f"mail to {len(cfg.mail.recipients)} recipient(s) via {cfg.mail.host or cfg.mail.catch_dir}"
        if cfg.mail.enabled
        else "mail off"
    )
    auth = "login required" if cfg.web.auth else "NO LOGIN"
    mq = cfg.mqtt
    mqtt = (f", MQTT {mq.host}:{mq.port}{' (TLS)' if mq.tls else ''} as unit '{mq.unit_name()}' "
            f"of site '{mq.site}'" if mq.enabled else "")
    return (
        f"camera '{cam.name}' ({src}, {cam.width}x{cam.height} @ {cam.fps:g} fps), "
        f"state in {cfg.paths.state_dir}, {mail}, web on {cfg.web.bind}:{cfg.web.port} ({auth})"
        f"{mqtt}"
    )
