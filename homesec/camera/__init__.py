"""Camera sources behind one interface, and the factory that picks one from the config."""

from __future__ import annotations

from homesec.camera.base import Camera, CameraError, CameraHung, EndOfStream, Frame, is_url
from homesec.config import CameraConfig

__all__ = ["Camera", "CameraError", "CameraHung", "EndOfStream", "Frame", "make_camera"]


def make_camera(cfg: CameraConfig, detect_width: int | None = None) -> Camera:
    """Build the source the config names (picamera2 is imported only when opened).

    `detect_width` (the detector's working width) lets the PyAV source hand out a smaller luma.
    """
    if cfg.source == "demo":
        from homesec.camera.demo import DemoCamera

        return DemoCamera(cfg.width, cfg.height, cfg.lores_width, cfg.fps, cfg.seed, cfg.realtime)
    if cfg.source == "opencv":
        if cfg.decoder == "pyav" and decodes_with_pyav(cfg.device):
            return video_camera(cfg.device, cfg.fps, "pyav", cfg.loop, cfg.realtime,
                                detect_width, cfg.rtsp_transport)
        from homesec.camera.opencv_source import OpenCVCamera

        return OpenCVCamera(cfg.device, cfg.fps, cfg.loop, cfg.realtime, cfg.width, cfg.height,
                            cfg.rtsp_transport)
    from homesec.camera.picam import PicameraCamera

    return PicameraCamera(cfg.width, cfg.height, cfg.lores_width, cfg.lores_height, cfg.fps,
                          frame_timeout_s=cfg.frame_timeout_s)


def decodes_with_pyav(device: str) -> bool:
    """Files and network streams go to PyAV; V4L2 devices (/dev/video*, an index) and image
    sequence patterns stay with OpenCV (camera/pyav_source.py says why); a URL is a stream,
    whatever it holds (a percent-encoded password has '%')."""
    return is_url(device) or not (device.isdigit() or device.startswith("/dev/") or "%" in device)


def video_camera(device: str, fps: float, decoder: str, loop: bool = False,
                 realtime: bool = False, detect_width: int | None = None,
                 rtsp_transport: str = "tcp") -> Camera:
    """A file or stream source with the decoder asked for (`homesec analyze`, the daemon)."""
    if decoder == "pyav" and decodes_with_pyav(device):
        from homesec.camera.pyav_source import PyAVCamera

        return PyAVCamera(device, fps, loop, realtime, detect_width=detect_width,
                          rtsp_transport=rtsp_transport)
    from homesec.camera.opencv_source import OpenCVCamera

    return OpenCVCamera(device, fps, loop, realtime, rtsp_transport=rtsp_transport)
