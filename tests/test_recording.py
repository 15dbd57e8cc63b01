"""Event clips from the demo source: pre-roll, length, format, splitting, crash safety."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from homesec.camera.demo import DemoCamera, DemoScene
from homesec.capture.daemon import Daemon
from homesec.capture.recording import PART_SUFFIX, PyavEncoder, clean_leftovers
from homesec.config import Config
from homesec.storage.clips import clips_of
from homesec.storage.store import Store
from tests.conftest import wait_for
from tests.test_daemon import LimitedCamera, demo_camera, start_daemon
from tests.test_retention import _small_fs as small_fs


def run_demo(cfg: Config, seconds: float) -> Store:
    """The real daemon on the demo scene (not paced in real time) for `seconds` of scene."""
    Daemon(cfg, camera=LimitedCamera(demo_camera(cfg), int(seconds * cfg.camera.fps))).run()
    return Store(cfg.paths.db_path)


def probe(path: Path) -> dict:
    """ffprobe's view of the file."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "stream=codec_name,pix_fmt,profile:format=format_name,duration", "-of", "json",
         str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame, as BGR, decoded with PyAV (raises on a damaged file)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def test_clip_has_pre_roll_covers_the_event_and_plays_on_phones(make_config) -> None:
    cfg = make_config(clips={"pre_roll_s": 3.0}, events={"post_motion_s": 2.0})
    store = run_demo(cfg, 15.0)  # one crossing, 5 s .. 9 s
    (ev,) = store.events()
    (clip,) = clips_of(store, ev.id)
    path = cfg.paths.media / clip.path
    info = probe(path)
    assert info["format"]["format_name"].startswith("mov,mp4")
    (stream,) = info["streams"]
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
    # The index is at the front (+faststart): a phone can play before it has the whole file.
    head = path.read_bytes()[:64]
    assert head[4:8] == b"ftyp" and b"moov" in path.read_bytes()[:4096]
    expected = cfg.clips.pre_roll_s + (ev.end_ts - ev.start_ts) + cfg.events.post_motion_s
    assert abs(float(info["format"]["duration"]) - expected) <= 0.5, (info, expected)
    assert abs(clip.duration_s - expected) <= 0.5
    frames = decode_all(path)
    assert len(frames) == clip.frames and clip.dropped_frames == 0
    assert abs(len(frames) - expected * cfg.camera.fps) <= 0.5 * cfg.camera.fps + 1
    # The first frames show the empty room: the person appears only after the pre-roll.
    scene = DemoCamera(cfg.camera.width, cfg.camera.height, seed=cfg.camera.seed).scene
    bg = scene.background.astype(np.float32)
    first = frames[0].astype(np.float32)
    assert np.abs(first - bg).mean() < 6, "the clip's first frame is not the empty scene"
    assert ev.start_ts - clip.start_ts >= cfg.clips.pre_roll_s - 0.01
    # ... and a frame in the middle of the crossing shows the person.
    mid = frames[int((cfg.clips.pre_roll_s + 1.5) * cfg.camera.fps)].astype(np.float32)
    assert np.abs(mid - bg).mean() > np.abs(first - bg).mean() + 1


def test_long_event_is_split_into_clips_that_cover_it(make_config) -> None:
    # One event longer than clips.max_s: post-motion keeps it open across crossings.
    cfg = make_config(clips={"max_s": 10.0, "pre_roll_s": 1.0}, events={"post_motion_s": 18.0})
    store = run_demo(cfg, 34.0)  # crossings at 5 s and 25 s, 18 s apart: one event
    (ev,) = store.events()
    parts = clips_of(store, ev.id)
    assert len(parts) >= 3, [(p.part, p.duration_s) for p in parts]
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    for a, b in itertools.pairwise(parts):
        assert abs(b.start_ts - a.end_ts) < 0.2, "a gap or an overlap between parts"
        assert a.duration_s <= cfg.clips.max_s + 0.01
    assert parts[0].start_ts <= ev.start_ts - cfg.clips.pre_roll_s + 0.01
    assert parts[-1].end_ts >= ev.end_ts - 0.1
    for p in parts:
        assert len(decode_all(cfg.paths.media / p.path)) == p.frames


def test_clips_disabled_encodes_nothing(make_config) -> None:
    cfg = make_config(clips={"enabled": False})
    d = Daemon(cfg, camera=LimitedCamera(demo_camera(cfg), int(12 * cfg.camera.fps)))
    assert d.clips is None
    d.run()
    store = Store(cfg.paths.db_path)
    assert store.count_events() == 1
    assert not list(cfg.paths.media.glob("*/*.mp4"))
    assert d.status()["clips"] == {"enabled": False}


def test_leftovers_of_a_crash_are_removed(tmp_path: Path) -> None:
    day = tmp_path / "2026-01-01"
    day.mkdir(parents=True)
    (day / f"120000-000.clip1{PART_SUFFIX}").write_bytes(b"\0" * 100)
    keep = day / "120000-000.clip1.mp4"
    keep.write_bytes(b"x")
    assert clean_leftovers(tmp_path) == [day / f"120000-000.clip1{PART_SUFFIX}"]
    assert keep.exists()




def test_sigkill_while_a_clip_is_written_leaves_no_broken_clip(tmp_path: Path) -> None:
    proc, db = start_daemon(tmp_path)
    media = tmp_path / "state" / "media"
    try:
        parts = wait_for(lambda: list(media.glob(f"*/*{PART_SUFFIX}")), timeout=30,
                         what="a clip being written")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(p.exists() for p in parts), "the half-written clip is there after the kill"
    proc, _ = start_daemon(tmp_path)
    try:
        wait_for(lambda: not any(p.exists() for p in parts), timeout=15,
                 what="the half-written clip to be removed at start")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    store = Store(db)
    for ev in store.events():
        for clip in clips_of(store, ev.id):
            frames = decode_all(media / clip.path)
            assert len(frames) == clip.frames > 0


def test_full_disk_stops_clips_not_detection_or_alerts(tmp_path: Path, make_config,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    mnt = small_fs(tmp_path, 8)
    try:
        cfg = make_config(paths={"media_dir": str(mnt / "media")}, events={"min_free_pct": 0})
        (mnt / "media").mkdir()
        # another program fills the disk
        with open(mnt / "filler.bin", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        store = Store(cfg.paths.db_path)
        store.set_arm(True, by="test")
        Daemon(cfg, camera=LimitedCamera(demo_camera(cfg), int(50 * cfg.camera.fps))).run()
        events = store.events()
        assert len(events) == 3 and all(e.end_ts and e.armed for e in events)
        assert store.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'motion'").fetchone()[0] == 3
        # and the owner is told the disk is full (a health alert of its own)
        assert store.conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'health' AND "
                                  "title LIKE 'Disk nearly full%'").fetchone()[0] == 1
        assert store.conn.execute("SELECT COUNT(*) FROM clips").fetchone()[0] == 0
        assert not list((mnt / "media").glob(f"*/*{PART_SUFFIX}")), "half-written clips left"
        said = [r for r in caplog.records if "event clip not written" in r.getMessage()]
        assert len(said) == 1, "a full disk is logged once, not for every clip"
    finally:
        subprocess.run(["umount", str(mnt)])


def test_a_recorder_that_falls_behind_drops_and_counts_frames(make_config) -> None:
    """A live camera never waits for the encoder: frames beyond the queue of two are dropped,
    counted in the status, and submit() returns at once."""
    from homesec.capture.recording import ClipIndex, PyavClipRecorder

    cfg = make_config(camera={"realtime": True})
    rec = PyavClipRecorder(cfg, ClipIndex(cfg))  # its thread not started: an encoder that stalls
    cam = demo_camera(cfg)
    cam.realtime = False
    cam.open()
    for _ in range(20):
        rec.submit(cam.read())
    assert rec.stats()["dropped_frames"] == 18 and rec.stats()["frames"] == 2


def test_clip_size_and_rate_follow_the_config(make_config) -> None:
    cfg = make_config(clips={"width": 320, "fps": 7.5, "pre_roll_s": 1.0},
                      events={"post_motion_s": 1.0})
    store = run_demo(cfg, 11.0)
    (ev,) = store.events()
    (clip,) = clips_of(store, ev.id)
    with av.open(str(cfg.paths.media / clip.path)) as c:
        frames = list(c.decode(video=0))
    assert (frames[0].width, frames[0].height) == (320, 180)
    assert abs(len(frames) / clip.duration_s - 7.5) < 0.6



def _x264_options(data: bytes) -> dict[str, str]:
    """The settings libx264 wrote into its first packet (SEI: "x264 - core ... options: k=v")."""
    start = data.index(b"x264 - core")
    text = data[start:data.index(b"\x00", start)].decode("ascii", "replace")
    return dict(kv.split("=", 1) for kv in text.split("options: ", 1)[1].split() if "=" in kv)


def test_encoder_runs_at_the_constant_quantiser_for_clips_crf() -> None:
    # No lookahead planes (constant rate factor needs them): ~10 MB less at 720p, docs/clips.md.
    scene = DemoScene(320, 180, 160, 1)
    enc = PyavEncoder(320, 180, 15.0, 26)
    first = next(enc.encode(scene.color(0.0), 0.0, 0.0))
    opts = _x264_options(first.data)
    assert opts["rc"] == "cqp" and opts["qp"] == "23", opts


def test_lower_clips_crf_gives_a_truer_and_bigger_clip(make_config) -> None:
    results = {}
    for crf in (18, 34):
        cfg = make_config(clips={"crf": crf, "pre_roll_s": 1.0}, events={"post_motion_s": 1.0})
        store = run_demo(cfg, 11.0)
        ev = max(store.events(), key=lambda e: e.id)  # the same state dir: this run's event
        (clip,) = clips_of(store, ev.id)
        path = cfg.paths.media / clip.path
        scene = DemoCamera(cfg.camera.width, cfg.camera.height, seed=cfg.camera.seed).scene
        first = decode_all(path)[0].astype(np.float32)
        results[crf] = (path.stat().st_size, np.abs(first - scene.background).mean())
    (size_hi, err_hi), (size_lo, err_lo) = results[18], results[34]
    assert size_hi > 1.5 * size_lo and err_hi < err_lo, results
