"""Build the alert email: subject, plain text + HTML, the snapshot inline and attached, the
thumbnails of folded-in events, all under the size cap.

Why both inline and attached: phone mail apps show an inline image at once, but some webmail
strips `cid:` images; the attachment is what survives forwarding. Why rescale instead of refusing:
a 1 MB cap is what many providers and phones on mobile data cope with, and an alert that is too
big to send is worse than a smaller picture.
"""

from __future__ import annotations

import html
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from pathlib import Path

import cv2
import numpy as np

from homesec.alerts.smtp import sender_address
from homesec.config import Config
from homesec.storage.store import Store

MAX_THUMBS = 12  # more folded-in events are listed as text only
SNAPSHOT_CID = "snapshot@homesec"


@dataclass
class AlertItem:
    """One event as the email shows it; paths are absolute (media dir + the stored name)."""

    event_id: int
    camera: str
    start_ts: float
    end_ts: float | None
    snapshot: Path | None
    thumb: Path | None


def clock(ts: float) -> str:
    """HH:MM:SS in local time (the subject and the digest lines)."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def event_link(cfg: Config, event_id: int) -> str:
    """The event's page in the web UI."""
    return f"{cfg.web.base_url.rstrip('/')}/events/{event_id}"


def subject(item: AlertItem) -> str:
    """'Motion at Front door while armed - 14:32:05': what happened, in the alarm's terms."""
    return f"Motion at {item.camera} while armed - {clock(item.start_ts)}"


def alarm_line(store: Store, now: float | None = None) -> str:
    """The state line of an alert: 'Alarm: triggered since 14:32:05 (armed by owner at 14:00)'."""
    from homesec.alarm import persist

    st = persist.status(store, time.time() if now is None else now)
    line = f"Alarm: {st.state} since {clock(st.changed_ts)}"
    if st.state in ("pending", "triggered") and st.armed_ts is not None:
        line += f" (armed at {clock(st.armed_ts)})"
    elif st.changed_by:
        line += f" (by {st.changed_by})"
    if st.snooze_until is not None:
        line += ", alerts snoozed"
    return line


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def _duration(item: AlertItem, now: float) -> str:
    if item.end_ts is not None:
        return f"Motion lasted {max(0.0, item.end_ts - item.start_ts):.0f} s."
    return f"Motion for {max(0.0, now - item.start_ts):.0f} s so far (still going when this was sent)."


class _Snapshot:
    """The main snapshot, re-encoded smaller only when the message would be too big."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self._image: np.ndarray | None = None

    def jpeg(self, scale: float, quality: int) -> bytes | None:
        if self.data is None or scale <= 0:
            return None
        if scale >= 1.0:
            return self.data
        if self._image is None:
            self._image = cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_COLOR)
            if self._image is None:
                return None
        h, w = self._image.shape[:2]
        size = (max(16, round(w * scale)), max(16, round(h * scale)))
        small = cv2.resize(self._image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes() if ok else None


# (snapshot scale, JPEG quality, how many thumbnails): tried in order until the message fits.
_PLANS: list[tuple[float, int, int]] = [
    (1.0, 0, MAX_THUMBS), (0.75, 80, MAX_THUMBS), (0.56, 75, MAX_THUMBS), (0.42, 70, 6),
    (0.32, 65, 3), (0.24, 60, 0), (0.16, 55, 0), (0.0, 0, 0),
]


def compose_alert(cfg: Config, items: list[AlertItem], message_id: str,
                  now: float | None = None, state: str | None = None) -> EmailMessage:
    """The email for one alert or a digest: `items` in time order, the newest is the main one."""
    now = time.time() if now is None else now
    main, earlier = items[-1], items[:-1]
    snap = _Snapshot(_read(main.snapshot))
    thumbs = [_read(it.thumb) for it in earlier]

    def build(scale: float, quality: int, n_thumbs: int) -> EmailMessage:
        n_thumbs = min(n_thumbs, len(earlier))  # the newest n earlier events get a thumbnail
        return _build(cfg, main, earlier, message_id, now, snap.jpeg(scale, quality),
                      thumbs[-n_thumbs:] if n_thumbs else [], n_thumbs, state)

    return fit(build, cfg.mail.max_message_bytes)


def fit(build: Callable[[float, int, int], EmailMessage], limit: int) -> EmailMessage:
    """The first plan whose message is under `limit` bytes (as sent, CRLF line ends)."""
    msg = None
    for scale, quality, n_thumbs in _PLANS:
        msg = build(scale, quality, n_thumbs)
        if len(msg.as_bytes(policy=SMTP)) <= limit:
            return msg
    assert msg is not None
    return msg  # text only; can only be over the cap with thousands of folded-in events


def _headers(cfg: Config, msg: EmailMessage, subj: str, message_id: str, now: float) -> None:
    msg["Subject"] = subj
    msg["From"] = sender_address(cfg.mail)
    msg["To"] = ", ".join(cfg.mail.recipients)
    msg["Date"] = formatdate(now, localtime=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"


def _build(cfg: Config, main: AlertItem, earlier: list[AlertItem], message_id: str, now: float,
           jpeg: bytes | None, thumbs: list[bytes | None], n_thumbs: int,
           state: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    _headers(cfg, msg, subject(main), message_id, now)
    msg["X-Homesec-Events"] = ",".join(str(it.event_id) for it in [*earlier, main])
    day = time.strftime("%a %d %b %Y", time.localtime(main.start_ts))
    link = event_link(cfg, main.event_id)
    lines = [f"Motion at {main.camera} while armed, at {clock(main.start_ts)} ({day}).",
             _duration(main, now), f"See the event: {link}"]
    if state:
        lines.insert(1, state)
    if jpeg is None:
        lines.append("(The snapshot could not be included.)")
    if earlier:
        lines += ["", f"And {len(earlier)} more event{'s' if len(earlier) > 1 else ''} since "
                  f"{clock(earlier[0].start_ts)}:"]
        lines += [f"  {clock(it.start_ts)}  {event_link(cfg, it.event_id)}" for it in earlier]
    lines += ["", f"-- homesec on {socket.gethostname()}"]
    msg.set_content("\n".join(lines) + "\n")

    esc = html.escape
    parts = [f"<p><b>Motion at {esc(main.camera)}</b> while armed, at {clock(main.start_ts)} "
             f"({esc(day)}).<br>{esc(_duration(main, now))}"
             + (f"<br>{esc(state)}" if state else "") + "</p>"]
    if jpeg is not None:
        parts.append(f'<p><a href="{esc(link)}"><img src="cid:{SNAPSHOT_CID}" alt="snapshot" '
                     f'style="max-width:100%"></a></p>')
    parts.append(f'<p><a href="{esc(link)}">Open the event</a></p>')
    related: list[tuple[bytes, str]] = []
    if earlier:
        parts.append(f"<p>And {len(earlier)} more event{'s' if len(earlier) > 1 else ''} since "
                     f"{clock(earlier[0].start_ts)}:</p><p>")
        first_thumb = len(earlier) - n_thumbs if n_thumbs else len(earlier)
        for i, it in enumerate(earlier):
            ev_link = esc(event_link(cfg, it.event_id))
            data = thumbs[i - first_thumb] if i >= first_thumb else None
            if data is not None:
                cid = f"thumb{it.event_id}@homesec"
                related.append((data, cid))
                parts.append(f'<a href="{ev_link}"><img src="cid:{cid}" alt="{clock(it.start_ts)}" '
                             f'width="160"></a> ')
            parts.append(f'<a href="{ev_link}">{clock(it.start_ts)}</a><br>')
        parts.append("</p>")
    msg.add_alternative("<html><body>" + "\n".join(parts) + "</body></html>", subtype="html")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    if jpeg is not None:
        html_part.add_related(jpeg, "image", "jpeg", cid=f"<{SNAPSHOT_CID}>")
    for data, cid in related:
        html_part.add_related(data, "image", "jpeg", cid=f"<{cid}>")
    if jpeg is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(main.start_ts))
        msg.add_attachment(jpeg, "image", "jpeg", filename=f"motion-{stamp}-event{main.event_id}.jpg")
    return msg


def compose_notice(cfg: Config, title: str, body: str, message_id: str,
                   now: float | None = None) -> EmailMessage:
    """A health or tamper alert ('Camera covered at Front door'): text only, its own email."""
    now = time.time() if now is None else now
    msg = EmailMessage()
    _headers(cfg, msg, f"{title} - {clock(now)}", message_id, now)
    msg.set_content(f"{body}\n\nThe web UI: {cfg.web.base_url.rstrip('/')}/\n"
                    f"\n-- homesec on {socket.gethostname()}\n")
    return msg


def compose_test(cfg: Config, message_id: str, now: float | None = None) -> EmailMessage:
    """The `homesec mail-test` message: proves delivery, shows where links will point."""
    now = time.time() if now is None else now
    msg = EmailMessage()
    _headers(cfg, msg, f"homesec test email from {cfg.camera.name} - {clock(now)}", message_id, now)
    msg.set_content(
        f"This is a test email from homesec ({cfg.camera.name}) on {socket.gethostname()}.\n"
        f"Alerts will look like: 'Motion at {cfg.camera.name} - HH:MM:SS' with a snapshot.\n"
        f"Event links will point to {cfg.web.base_url.rstrip('/')}/events/...\n"
    )
    return msg
