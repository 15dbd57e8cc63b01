"""The detector's time constants follow the rate frames really arrive at, not the configured fps."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from homesec.camera.base import Frame
from homesec.capture.daemon import Daemon
from homesec.capture.frame_rate import FrameRateMeter
from homesec.capture.status import read_status
from tests.conftest import wait_for


def test_meter_measures_the_median_interval_and_ignores_gaps() -> None:
    meter = FrameRateMeter()
    t = 100.0
    for i in range(40):
        t += 0.1 if i != 20 else 30.0  # one reconnect gap is not a frame interval
        meter.add(t)
    assert meter.rate() == pytest.approx(10.0)
    assert meter.retune(10.5) is None  # close enough: nothing to do
    assert meter.retune(30.0) == 10.0


class SlowCamera:
    """Delivers 10 frames per second of sensor time although the config asks for 30."""

    def __init__(self) -> None:
        self.i = 0
        self.luma = np.full((120, 160), 90, np.uint8)

    def open(self) -> None:
        pass

    def read(self) -> Frame:
        self.i += 1
        return Frame(index=self.i, mono_s=1000.0 + self.i / 10, wall_s=1e9 + self.i / 10,
                     luma=self.luma, _color_fn=lambda: np.zeros((120, 160, 3), np.uint8))

    def close(self) -> None:
        pass


def test_daemon_retunes_the_detector_to_the_measured_rate(make_config) -> None:
    cfg = make_config(camera={"fps": 30})
    stop = threading.Event()
    daemon = Daemon(cfg, camera=SlowCamera(), stop=stop)
    assert daemon.detector.fps == 30
    t = threading.Thread(target=daemon.run)
    t.start()
    try:
        st = wait_for(lambda: (s := read_status(cfg.paths.runtime_dir)) and
                      s["detector_fps"] != 30 and s, what="the detector to be retuned")
    finally:
        stop.set()
        t.join(10)
    assert st["detector_fps"] == 10.0 and daemon.detector.fps == 10.0
