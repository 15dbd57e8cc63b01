"""MotionDetector on synthetic frames: each case a user would notice (an intruder found where he
is, a lamp or the exposure not mistaken for one, noise and a swaying tree not a stream of alarms,
masks honoured), at more than one frame rate and input size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from homesec.camera.base import Frame
from homesec.capture.events import EventTracker
from homesec.capture.motion import MotionDetector, MotionResult
from homesec.config import EventsConfig, MaskConfig, MotionConfig

Box = tuple[int, int, int, int]


class Scene:
    """A textured room with sensor noise; objects and light are drawn per frame by the tests."""

    def __init__(self, width: int = 640, height: int = 360, noise: float = 3.0, seed: int = 7,
                 level: float = 1.0) -> None:
        self.w, self.h, self.noise = width, height, noise
        self.rng = np.random.default_rng(seed)
        base = self.rng.normal(110, 35, (height // 12 + 1, width // 12 + 1)).astype(np.float32)
        tex = cv2.resize(cv2.GaussianBlur(base, (0, 0), 1.0), (width, height),
                         interpolation=cv2.INTER_CUBIC)
        fine = cv2.GaussianBlur(self.rng.normal(0, 12, (height, width)).astype(np.float32), (0, 0), 1.0)
        self.bg = np.clip(tex + fine, 15, 235) * level

    def frame(self, img: np.ndarray | None = None, gain: float | np.ndarray = 1.0) -> np.ndarray:
        """The scene (or `img`) times a light gain, plus fresh sensor noise, as uint8 luma."""
        base = self.bg if img is None else img
        out = base * gain + self.rng.normal(0, self.noise, base.shape).astype(np.float32)
        return np.clip(out, 0, 255).astype(np.uint8)

    def with_object(self, box: Box, value: float = 40.0, img: np.ndarray | None = None) -> np.ndarray:
        """A copy of the background with a dark object (a person, say) filling `box`."""
        out = (self.bg if img is None else img).copy()
        x, y, w, h = box
        cv2.ellipse(out, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, value, -1)
        return out


def feed(det: MotionDetector, frames: list[np.ndarray]) -> list[MotionResult]:
    """Run the detector over frames, returning every result."""
    return [det.update(f) for f in frames]


def events_started(results: list[MotionResult], fps: float) -> list[float]:
    """Times at which the real EventTracker (default config) would start an event."""
    tracker = EventTracker(EventsConfig(), keep_images=False)
    starts = []
    for i, r in enumerate(results):
        frame = Frame(index=i, mono_s=i / fps, wall_s=i / fps, luma=np.zeros((1, 1), np.uint8),
                      _color_fn=lambda: np.zeros((1, 1, 3), np.uint8))
        upd = tracker.update(frame, r)
        if upd.started is not None:
            starts.append(i / fps)
    return starts


def overlap(a: Box, b: Box) -> float:
    """Intersection over the area of b (how much of the object a box covers)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (b[2] * b[3])


def warmed(scene: Scene, fps: float, seconds: float = 2.0, cfg: MotionConfig | None = None
           ) -> MotionDetector:
    """A detector that has seen `seconds` of the empty scene (and reported nothing meanwhile)."""
    det = MotionDetector(cfg or MotionConfig(), fps=fps)
    results = feed(det, [scene.frame() for _ in range(int(seconds * fps))])
    assert results[0].warming_up
    assert not any(r.motion for r in results)
    return det


@pytest.mark.parametrize("fps", [15.0, 30.0])
def test_object_entering_gives_a_box_where_it_is(fps: float) -> None:
    scene = Scene()
    det = warmed(scene, fps)
    found = []
    for k in range(int(fps)):  # a person walking left to right for a second
        box = (100 + 6 * k, 120, 50, 140)
        r = det.update(scene.frame(scene.with_object(box)))
        found.append((r, box))
    hits = [(r, box) for r, box in found if r.motion]
    assert len(hits) >= 0.8 * len(found), "the walking object is missed in many frames"
    for r, box in hits:
        best = max(overlap(b, box) for b in r.boxes)
        assert best > 0.6, f"no box covers the object at {box}: {r.boxes}"
        # ...and the box is about its size, not the whole frame.
        big = max(r.boxes, key=lambda b: overlap(b, box))
        assert big[2] * big[3] < 3 * box[2] * box[3]
    assert 0.5 < hits[-1][0].area_pct < 10.0


def test_boxes_are_in_input_frame_coordinates() -> None:
    scene = Scene(1280, 720)
    det = warmed(scene, 15.0)
    box = (900, 300, 120, 300)
    results = feed(det, [scene.frame(scene.with_object(box)) for _ in range(3)])
    assert results[-1].motion
    assert max(overlap(b, box) for b in results[-1].boxes) > 0.8
    assert all(b[0] + b[2] <= 1280 + 8 and b[1] + b[3] <= 720 + 8 for b in results[-1].boxes)


@pytest.mark.parametrize("fps", [15.0, 30.0])
@pytest.mark.parametrize("kind", ["lamp on", "lamp off", "exposure step", "cloud ramp"])
def test_light_change_is_not_motion(kind: str, fps: float) -> None:
    scene = Scene()
    yy, xx = np.mgrid[0 : scene.h, 0 : scene.w].astype(np.float32)
    # A lamp lights the room unevenly: 1.3x far from it, up to 1.8x near it (top right).
    lamp = 1.3 + 0.5 * np.exp(-((xx - 0.8 * scene.w) ** 2 + (yy - 0.1 * scene.h) ** 2) / (0.3 * scene.w) ** 2)
    if kind == "lamp off":
        scene.bg = scene.bg * lamp  # learnt with the lamp on, then it goes off
    det = warmed(scene, fps)
    n = int(3 * fps)
    if kind == "lamp on":
        gains = [lamp] * n
    elif kind == "lamp off":
        gains = [1.0 / lamp] * n
    elif kind == "exposure step":
        gains = [0.7] * n
    else:  # the sun goes behind a cloud over half a second
        ramp = int(0.5 * fps)
        gains = [1.0 - 0.45 * min(1.0, k / ramp) for k in range(n)]
    results = feed(det, [scene.frame(gain=g) for g in gains])
    assert not any(r.motion for r in results), f"{kind}: motion reported"
    assert any(r.light_change for r in results), f"{kind}: not flagged as a light change"
    # ...and once the scene has settled (3 s after the change) a person is seen in the new light.
    lit = scene.bg * gains[-1]
    feed(det, [scene.frame(gain=gains[-1]) for _ in range(int(1.5 * fps))])
    box = (300, 100, 60, 150)
    after = feed(det, [scene.frame(scene.with_object(box, img=lit)) for _ in range(3)])
    assert after[-1].motion and max(overlap(b, box) for b in after[-1].boxes) > 0.5


@pytest.mark.parametrize("fps", [15.0, 30.0])
@pytest.mark.parametrize("level", [1.0, 0.25], ids=["bright", "dim"])
def test_noise_and_compression_give_nothing(fps: float, level: float) -> None:
    scene = Scene(noise=3.0 if level == 1.0 else 5.0, level=level)
    det = MotionDetector(MotionConfig(), fps=fps)
    frames = []
    for _ in range(int(10 * fps)):
        ok, jpg = cv2.imencode(".jpg", scene.frame(), [cv2.IMWRITE_JPEG_QUALITY, 60])
        assert ok
        frames.append(cv2.imdecode(jpg, cv2.IMREAD_GRAYSCALE))
    results = feed(det, frames)
    assert sum(r.motion for r in results) == 0
    assert not any(r.light_change for r in results)


def test_dim_noisy_room_still_finds_a_person() -> None:
    scene = Scene(noise=5.0, level=0.25)  # mean about 28 grey levels, noise sigma 5
    det = warmed(scene, 15.0, seconds=3.0)
    box = (200, 90, 60, 160)
    results = feed(det, [scene.frame(scene.with_object(box, value=8.0)) for _ in range(5)])
    assert results[-1].motion and max(overlap(b, box) for b in results[-1].boxes) > 0.5


@pytest.mark.parametrize("mask", [
    MaskConfig(rect=[0.0, 0.0, 0.5, 1.0]),
    MaskConfig(polygon=[[0.0, 0.0], [0.55, 0.0], [0.55, 1.0], [0.0, 1.0]]),
], ids=["rect", "polygon"])
def test_mask_is_honoured(mask: MaskConfig) -> None:
    scene = Scene()
    det = warmed(scene, 15.0, cfg=MotionConfig(masks=[mask]))
    inside = [det.update(scene.frame(scene.with_object((60 + 8 * k, 100, 50, 140)))) for k in range(15)]
    assert not any(r.motion for r in inside), "motion inside the masked left half"
    feed(det, [scene.frame() for _ in range(30)])
    box = (450, 100, 50, 140)
    outside = feed(det, [scene.frame(scene.with_object(box)) for _ in range(3)])
    assert outside[-1].motion and max(overlap(b, box) for b in outside[-1].boxes) > 0.6


def swaying(scene: Scene, t: float, region: Box, rng: np.random.Generator) -> np.ndarray:
    """The scene with a high-contrast 'bush' in `region` that sways and flickers in the wind."""
    x, y, w, h = region
    img = scene.bg.copy()
    if not hasattr(scene, "bush"):
        leaves = (rng.random((h // 6 + 1, w // 6 + 1)) > 0.5).astype(np.float32)
        bush = cv2.resize(leaves, (w + 40, h + 40), interpolation=cv2.INTER_NEAREST)
        scene.bush = cv2.GaussianBlur(bush * 110 + 70, (0, 0), 1.5)  # type: ignore[attr-defined]
    dx = 2.0 * np.sin(2 * np.pi * 0.6 * t) + 1.0 * np.sin(2 * np.pi * 1.7 * t + 1.0) + rng.normal(0, 0.5)
    dy = 1.0 * np.sin(2 * np.pi * 0.9 * t + 0.5) + rng.normal(0, 0.3)
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(scene.bush, m, (w + 40, h + 40), borderMode=cv2.BORDER_REFLECT)  # type: ignore[attr-defined]
    img[y : y + h, x : x + w] = moved[20 : 20 + h, 20 : 20 + w]
    return img


@pytest.mark.parametrize("fps", [15.0, 30.0])
def test_swaying_bush_is_learnt_but_a_person_there_is_found(fps: float) -> None:
    scene = Scene()
    rng = np.random.default_rng(3)
    region = (420, 40, 200, 200)  # a bush in the top right corner, 17 % of the picture
    det = MotionDetector(MotionConfig(), fps=fps)
    n = int(20 * fps)
    results = feed(det, [scene.frame(swaying(scene, k / fps, region, rng)) for k in range(n)])
    starts = events_started(results, fps)
    assert [s for s in starts if s > 4.0] == [], f"the bush keeps raising events at {starts}"
    assert sum(r.motion for r in results[int(10 * fps):]) <= 0.05 * (n - 10 * fps)
    # A person walks into the bush area: found, with a box on him.
    found = []
    for k in range(int(fps)):
        box = (430 + 4 * k, 60, 60, 170)
        img = scene.with_object(box, value=20.0, img=swaying(scene, (n + k) / fps, region, rng))
        r = det.update(scene.frame(img))
        found.append(r.motion and max(overlap(b, box) for b in r.boxes) > 0.4)
    assert sum(found) >= 0.6 * len(found)


def test_warm_up_at_stream_start() -> None:
    scene = Scene()
    det = MotionDetector(MotionConfig(), fps=15.0)
    # The camera starts black and its exposure settles over a second: nothing to report.
    gains = [0.0, 0.2, 0.4, 0.6, 0.75, 0.85, 0.92, 0.96, 0.98, 0.99] + [1.0] * 40
    results = feed(det, [scene.frame(gain=g) for g in gains])
    assert results[0].warming_up and results[5].warming_up
    assert not results[-1].warming_up
    assert not any(r.motion for r in results)


def test_any_input_size_and_colour_planes() -> None:
    for w, h in [(320, 240), (1920, 1080), (801, 601)]:
        scene = Scene(w, h)
        det = warmed(scene, 15.0)
        box = (w // 3, h // 4, w // 8, h // 2)
        r = feed(det, [scene.frame(scene.with_object(box)) for _ in range(3)])[-1]
        assert r.motion and max(overlap(b, box) for b in r.boxes) > 0.6, (w, h, r.boxes)


def steps(scene: Scene, t: float, region: Box, speed: float = 20.0, period: int = 24) -> np.ndarray:
    """The scene with escalator steps (bright and dark stripes) running through `region`."""
    x, y, w, h = region
    img = scene.bg.copy()
    rows = np.arange(h, dtype=np.float32)[:, None]
    stripes = (((rows + speed * t) % period) < period / 3).astype(np.float32) * 60 + 60
    img[y : y + h, x : x + w] = cv2.GaussianBlur(np.repeat(stripes, w, axis=1), (0, 0), 1.0)
    return img


@pytest.mark.parametrize("start_s", [0.0, 5.0], ids=["running", "switched-on"])
def test_escalator_is_not_a_stream_of_events(start_s: float) -> None:
    """Steps moving all the time are background that moves: at most the start is an event."""
    fps = 15.0
    scene = Scene()
    region = (200, 60, 160, 260)
    det = MotionDetector(MotionConfig(), fps=fps)
    frames = [scene.frame(steps(scene, k / fps, region) if k / fps >= start_s else None)
              for k in range(int(30 * fps))]
    results = feed(det, frames)
    starts = events_started(results, fps)
    assert len(starts) <= (0 if start_s == 0.0 else 1), starts
    assert sum(r.motion for r in results[-int(10 * fps):]) == 0
    # ...while a person elsewhere in the room is found.
    box = (480, 100, 50, 140)
    r = feed(det, [scene.frame(scene.with_object(box, img=steps(scene, 30 + k / fps, region)))
                   for k in range(3)])[-1]
    assert r.motion and max(overlap(b, box) for b in r.boxes) > 0.6


def test_a_person_who_stops_stays_found() -> None:
    """Restlessness is learnt from recurring change, not from change that stays: someone who walks
    in and then stands (swaying a little) is still motion ten seconds later."""
    fps = 15.0
    scene = Scene()
    det = warmed(scene, fps, seconds=3.0)
    results = []
    for k in range(int(12 * fps)):
        sway = round(3 * float(np.sin(3.0 * k / fps)))
        results.append(det.update(scene.frame(scene.with_object((300 + sway, 100, 50, 140)))))
    late = results[int(2 * fps):]
    assert sum(r.motion for r in late) >= 0.9 * len(late)


@pytest.mark.parametrize("fps", [15.0, 30.0])
def test_soft_shading_on_a_plain_wall_is_not_motion_but_a_plain_object_is(fps: float) -> None:
    """A shadow with a soft edge darkening an untextured wall over two seconds and drifting (a
    person or a curtain between a lamp and the wall, out of view) has no texture to judge it by;
    what gives it away is that no pixel changes abruptly. A plain-coloured object with a sharp edge
    sliding slowly onto the same wall, as dark as the shadow, does change pixels abruptly: motion."""
    scene = Scene()
    wall = (0, 0, 320, 360)
    scene.bg[: wall[3], : wall[2]] = 150.0  # an untextured wall: the left half
    det = warmed(scene, fps)
    shade = np.zeros((scene.h, scene.w), np.float32)
    cv2.ellipse(shade, (150, 230), (70, 110), 0, 0, 360, 1.0, -1)
    shade = cv2.GaussianBlur(shade, (0, 0), 25.0)
    frames = []
    n = int(6 * fps)
    for k in range(n):
        depth = 0.25 * min(1.0, k / fps / 2.0)  # 25 % darker within two seconds
        moved = np.roll(shade, int(12 * k / fps), axis=1)  # drifting 12 px/s
        frames.append(scene.frame(gain=1.0 - depth * moved))
    results = feed(det, frames)
    assert events_started(results, fps) == [], "the soft shadow raised an event"
    # The shadow goes; then a plain object (as dark as the shadow's core) slides in from the left.
    feed(det, [scene.frame() for _ in range(int(3 * fps))])
    later = []
    for k in range(int(3 * fps)):
        x = -60 + int(40 * k / fps)  # 40 px/s: a slow walker at this size
        img = scene.bg.copy()
        cv2.rectangle(img, (x, 120), (x + 60, 320), 105.0, -1)
        later.append(det.update(scene.frame(img)))
    starts = events_started(later, fps)
    assert starts and starts[0] < 1.0, f"the object was found late or never: {starts}"
    box = (max(0, -60 + int(40 * 2.9)), 120, 60, 200)
    assert later[-1].motion and max(overlap(b, box) for b in later[-1].boxes) > 0.5
