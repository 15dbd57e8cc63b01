"""Tamper check (camera covered / blinded) on real footage and synthetic pictures, and the health
conditions in the outbox (once per condition until it clears)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from homesec.alarm import notify
from homesec.alarm.health import CoverWatch, is_uniform
from homesec.camera.demo import DemoScene
from homesec.storage.store import Store
from tests.conftest import DEV_CLIPS

CLIPS = sorted(DEV_CLIPS.glob("*.h264")) + sorted(DEV_CLIPS.glob("*.avi"))


def clip_luma(path: Path) -> list[np.ndarray]:
    """Every decoded frame's luma plane at the detector's 320-pixel width."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        y = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        out.append(cv2.resize(y, (320, round(320 * y.shape[0] / y.shape[1])),
                              interpolation=cv2.INTER_AREA))
    cap.release()
    return out


def covered_lens(shape: tuple[int, int], seed: int = 0, level: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 1.5, shape), 0, 255).astype(np.uint8)


def feed(watch: CoverWatch, frames: list[np.ndarray], fps: float, t0: float = 0.0) -> list[str]:
    said = []
    for i, luma in enumerate(frames):
        if (r := watch.update(luma, t0 + i / fps)) is not None:
            said.append(r)
    return said


@pytest.mark.skipif(not CLIPS, reason=f"dev clips not found in {DEV_CLIPS}")
@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.name)
def test_dev_clips_raise_no_tamper_alert(clip: Path) -> None:
    """Real rooms: the light coming on, a camera that starts black, a person's face filling the
    frame, trees, a road: never "covered", even with the shortest hold allowed (1 s)."""
    frames = clip_luma(clip)
    assert len(frames) > 50
    assert feed(CoverWatch(hold_s=1.0), frames, 25.0) == []
    # The same clip, then the lens covered: the watch does fire (it is not simply blind).
    tail = [covered_lens(frames[0].shape, i) for i in range(3 * 25)]
    assert feed(CoverWatch(hold_s=1.0), frames + tail, 25.0) == ["covered"]


def test_demo_room_with_the_light_switched_off_is_not_covered() -> None:
    scene = DemoScene(640, 360, 320, seed=1)
    watch = CoverWatch(hold_s=1.0)
    frames = [scene.luma(t / 15) for t in range(0, 62 * 15, 3)]  # lamp on 40-60 s, crossings
    assert feed(watch, frames, 5.0) == []
    dim = [np.clip(f.astype(np.float32) * 0.12, 0, 255).astype(np.uint8) for f in frames[:40]]
    assert feed(watch, dim, 5.0, t0=100.0) == []  # a dark room whose texture is still there


def test_covered_once_then_cleared_then_again() -> None:
    scene = DemoScene(640, 360, 320, seed=1)
    room = [scene.luma(2.0 + i / 15) for i in range(30)]
    dark = [covered_lens(room[0].shape, i) for i in range(15 * 8)]
    blinded = [np.full(room[0].shape, 252, np.uint8) for _ in range(15 * 8)]
    watch = CoverWatch(hold_s=5.0)
    said = feed(watch, room + dark[: 15 * 4], 15.0)
    assert said == []  # 4 s of black < hold
    said = feed(watch, room + dark + room + blinded + room, 15.0, t0=100.0)
    assert said == ["covered", "cleared", "covered", "cleared"]


def test_a_camera_that_starts_uniform_is_not_tampered_with() -> None:
    shape = (180, 320)
    watch = CoverWatch(hold_s=1.0)
    assert feed(watch, [covered_lens(shape, i) for i in range(15 * 10)], 15.0) == []
    assert is_uniform(covered_lens(shape)) and is_uniform(np.full(shape, 255, np.uint8))


def test_health_condition_alerts_once_until_it_clears(tmp_path: Path) -> None:
    store = Store(tmp_path / "homesec.db")
    assert notify.raise_condition(store, "camera_lost", 100.0, "Cam lost since 00:01", "text")
    assert not notify.raise_condition(store, "camera_lost", 100.0, "Cam lost since 00:01", "text")
    assert notify.clear_condition(store, "camera_lost")
    assert notify.raise_condition(store, "camera_lost", 200.0, "Cam lost since 00:03", "text")
    rows = store.conn.execute("SELECT kind, title, event_id FROM outbox ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("health", "Cam lost since 00:01", None),
                                        ("health", "Cam lost since 00:03", None)]
    # tamper only while armed
    assert not notify.raise_condition(store, "camera_covered", 1.0, "Covered", "text")
    store.arm("owner")
    assert notify.raise_condition(store, "camera_covered", 1.0, "Covered", "text")
    store.close()


def test_health_alert_is_an_email_of_its_own(tmp_path: Path) -> None:
    from homesec.alerts import outbox

    store = Store(tmp_path / "homesec.db")
    store.arm("owner", now=50.0)
    eid, queued = store.add_event("cam", 100.0, 1.0, [], None, None, None, 3, now=100.0)
    assert queued
    notify.raise_condition(store, "disk_low", 101.0, "Disk nearly full at cam", "3 % free",
                           now=101.0)
    first = outbox.form_batch(store)
    assert first is not None and first.event_ids == [eid] and first.notice is None
    outbox.mark_sent(store, first)
    second = outbox.form_batch(store)
    assert second is not None and second.event_ids == [] and second.notice is not None
    assert second.notice[0] == "Disk nearly full at cam" and "Alarm: triggered" in second.notice[1]
    store.close()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB file system (tmpfs) to fill up; skipped where none can be mounted."""
    import os
    import subprocess

    mnt = tmp_path / "media"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_disk_nearly_full_alerts_once_until_space_is_back(tmp_path: Path, small_fs: Path) -> None:
    from homesec.alarm.runner import AlarmThread
    from homesec.config import parse

    cfg = parse({"paths": {"state_dir": str(tmp_path / "state"), "media_dir": str(small_fs),
                           "runtime_dir": str(tmp_path / "run")},
                 "alarm": {"disk_alert_free_pct": 10}})
    store = Store(cfg.paths.db_path)
    thread = AlarmThread(cfg, lambda: None)

    def health_rows() -> list[str]:
        return [r[0] for r in store.conn.execute(
            "SELECT title FROM outbox WHERE kind = 'health' ORDER BY id")]

    thread.check_disk(store, 1.0)
    assert health_rows() == []
    filler = small_fs / "other-program.bin"  # written by something else, not homesec
    filler.write_bytes(b"\0" * (3900 * 1024))
    thread.check_disk(store, 2.0)
    thread.check_disk(store, 3.0)
    assert health_rows() == ["Disk nearly full at Home"]
    filler.unlink()
    thread.check_disk(store, 4.0)
    assert "disk_low" not in notify.raised(store)
    filler.write_bytes(b"\0" * (3900 * 1024))
    thread.check_disk(store, 5.0)
    assert health_rows() == ["Disk nearly full at Home"] * 2
    store.close()
