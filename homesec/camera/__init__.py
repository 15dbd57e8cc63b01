"""Camera sources behind one interface, and the factory that picks one from the config."""

from __future__ import annotations

from homesec.camera.base import Camera, CameraError, CameraHung, EndOfStream, Frame
from homesec.config import CameraConfig

__all__ = ["Camera", "CameraError", "CameraHung", "EndOfStream", "Frame", "make_camera"]


def make_camera(cfg: CameraConfig) -> Camera:
    """Build the source the config names (picamera2 is imported only when opened)."""
    if cfg.source == "demo":
        from homesec.camera.demo import DemoCamera

        return DemoCamera(cfg.width, cfg.height, cfg.lores_width, cfg.fps, cfg.seed, cfg.realtime)
    if cfg.source == "opencv":
        from homesec.camera.opencv_source import OpenCVCamera

        return OpenCVCamera(cfg.device, cfg.fps, cfg.loop, cfg.realtime, cfg.width, cfg.height)
    from homesec.camera.picam import PicameraCamera

    return PicameraCamera(cfg.width, cfg.height, cfg.lores_width, cfg.lores_height, cfg.fps,
                          frame_timeout_s=cfg.frame_timeout_s)
