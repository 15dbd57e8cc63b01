"""`homesec analyze` on recorded files: the same detector and event logic, stable JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from homesec.camera.demo import DemoScene
from tests.conftest import run_homesec

FPS = 15.0


def render(seconds: float, size: tuple[int, int] = (640, 360)) -> list:
    scene = DemoScene(size[0], size[1], 320, seed=5)
    frames = []
    for i in range(int(seconds * FPS)):
        img = scene.color(i / FPS)
        noise = cv2.randn(img.copy(), (0, 0, 0), (3, 3, 3))  # sensor noise, non-negative half
        frames.append(cv2.add(img, noise))
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "scene.avi"
    frames = render(32.0)  # crossings at 5 s and 25 s
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS,
                             (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def parse(stdout: str) -> tuple[list[dict], dict]:
    objs = [json.loads(line) for line in stdout.splitlines()]
    assert objs and objs[-1]["type"] == "summary"
    assert all(o["type"] == "event" for o in objs[:-1])
    return objs[:-1], objs[-1]


def test_json_events_match_the_scene(video: Path) -> None:
    res = run_homesec("analyze", str(video), "--json")
    assert res.returncode == 0, res.stderr
    events, summary = parse(res.stdout)
    assert summary["frames"] == int(32 * FPS) and summary["fps"] == FPS
    assert summary["events"] == len(events) == 2
    assert set(summary) == {"type", "frames", "fps", "events", "light_changes",
                            "detect_ms_per_frame"}
    for ev, start in zip(events, (5.0, 25.0), strict=True):
        # The fields the scorer and users' scripts read stay; new ones are only added.
        assert set(ev) == {"type", "start_s", "end_s", "start_frame", "end_frame",
                           "peak_area_pct", "boxes", "end_reason", "transient_frames"}
        assert ev["transient_frames"] == 0  # no insects in this scene
        assert start <= ev["start_s"] <= start + 1.0
        assert ev["start_s"] == round(ev["start_frame"] / FPS, 3)
        assert ev["end_s"] > ev["start_s"] + 2.0
        assert ev["peak_area_pct"] > 0.5
        # The first crossing ends after the quiet period; the second runs into the end of the file.
        assert ev["end_reason"] == ("quiet" if start == 5.0 else "end_of_stream")
        for x, y, w, h in ev["boxes"]:
            assert 0 <= x < 640 and 0 <= y < 360 and w > 0 and h > 0
            assert x + w <= 640 and y + h <= 360, "box reaches past the frame edge"


def test_fps_flag_sets_the_timebase(video: Path) -> None:
    res = run_homesec("analyze", str(video), "--json", "--fps", "30")
    events, summary = parse(res.stdout)
    assert summary["fps"] == 30.0
    assert 2.5 <= events[0]["start_s"] <= 3.0  # frame 75 at 30 fps


def test_image_sequence_pattern(tmp_path: Path) -> None:
    frames = render(11.0)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"in{i:06d}.jpg"), f)
    res = run_homesec("analyze", str(tmp_path / "in%06d.jpg"), "--fps", "15", "--json")
    assert res.returncode == 0, res.stderr
    events, summary = parse(res.stdout)
    assert summary["frames"] == len(frames)
    assert len(events) == 1 and 5.0 <= events[0]["start_s"] <= 6.0


def test_human_output_and_missing_file(video: Path, tmp_path: Path) -> None:
    res = run_homesec("analyze", str(video))
    assert res.returncode == 0
    assert res.stdout.count("event ") == 2 and "frames at 15 fps" in res.stdout
    res = run_homesec("analyze", str(tmp_path / "nope.mp4"))
    assert res.returncode == 2 and "no such video file" in res.stderr
