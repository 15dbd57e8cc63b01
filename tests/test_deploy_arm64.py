"""deploy.sh on the Pi's own architecture: an arm64 (aarch64) Debian bookworm root made with
`debootstrap --arch=arm64`, its programs run by qemu-user-static through binfmt_misc, deploy.sh
run inside it with chroot. Checks what matters on a Pi and cannot be seen on x86-64: pip resolves
wheels that import on aarch64 (OpenCV, argon2) next to apt's numpy (python3-numpy,
as on Raspberry Pi OS), the installed `homesec` runs (--version, check-config), and `homesec
analyze` on a dev clip finds the same events as on this machine.

Timing under emulation means nothing, so nothing here is timed. The finished debootstrap root is
cached as a tarball in $HOMESEC_TEST_CACHE (default /var/cache/homesec-tests): the second stage
of debootstrap under qemu is the slow part and needs doing once.

Needs root, debootstrap, qemu-user-static with binfmt_misc (see .ci/run), and network access to a
Debian mirror and PyPI. When arm64 programs cannot be run here the test fails and says why: an
architecture test that silently skips would tell nobody anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import homesec
from tests.conftest import REPO
from tests.test_deploy_debian import (
    CACHE,
    MIRROR,
    SRC,
    SUITE,
    copy_repo,
    in_root,
    mirror_reachable,
    mounts_under,
)

pytestmark = pytest.mark.slow

ARCH = "arm64"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
DEV_CLIPS = REPO.parent / "shared" / "data" / "dev"
CLIP = "beweging-walking-to.h264"  # raw H.264, a person walks towards the camera
CLIP_FPS = "25"


def binfmt_problem() -> str | None:
    """Why arm64 programs cannot run here (None when they can), after trying what .ci/run does."""
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                       capture_output=True)
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not (BINFMT / "register").exists():
        return f"binfmt_misc is not mounted at {BINFMT} and cannot be (mount -t binfmt_misc ...)"
    if not entry.exists():
        return ("no qemu-aarch64 entry in binfmt_misc: apt-get install qemu-user-static "
                "binfmt-support, then update-binfmts --enable qemu-aarch64")
    lines = entry.read_text().splitlines()
    if "enabled" not in lines:
        return f"{entry} is disabled: update-binfmts --enable qemu-aarch64"
    # F (fix binary): the interpreter is opened at registration, so it works inside a chroot.
    flags = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")
    if "F" not in flags:
        return f"{entry} lacks the F flag (flags: {flags!r}): qemu cannot run inside a chroot"
    return None


def arm64_root_tarball() -> Path:
    """A finished minimal arm64 bookworm root as a tarball, built once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{SUITE}-{ARCH}-minbase-root.tar"
    if tarball.exists():
        return tarball
    scratch = CACHE / f"make-{ARCH}-root"
    shutil.rmtree(scratch, ignore_errors=True)
    res = subprocess.run(["debootstrap", f"--arch={ARCH}", "--variant=minbase", SUITE,
                          str(scratch), MIRROR], capture_output=True, text=True, timeout=1500)
    if res.returncode != 0:
        log = scratch / "debootstrap/debootstrap.log"
        tail = log.read_text()[-3000:] if log.exists() else ""
        shutil.rmtree(scratch, ignore_errors=True)
        raise AssertionError(f"debootstrap --arch={ARCH} failed:\n{res.stdout[-2000:]}\n"
                             f"{res.stderr[-2000:]}\n{tail}")
    partial = tarball.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(scratch), "--numeric-owner", "-cf", str(partial), "."],
                   check=True)
    partial.rename(tarball)
    shutil.rmtree(scratch, ignore_errors=True)
    return tarball


@pytest.fixture(scope="module")
def arm64_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        pytest.skip("needs debootstrap (apt-get install debootstrap)")
    problem = binfmt_problem()
    if problem:
        pytest.fail(f"cannot run arm64 programs on this machine, so the Pi's architecture is "
                    f"NOT tested: {problem}")
    if not mirror_reachable():
        pytest.skip(f"Debian mirror {MIRROR} not reachable")
    root = tmp_path_factory.mktemp("debian-arm64") / "root"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(arm64_root_tarball())],
                   check=True)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    local_cas = Path("/usr/local/share/ca-certificates")
    if local_cas.is_dir():
        shutil.copytree(local_cas, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
        yield root
    finally:
        for point in mounts_under(root):
            if subprocess.run(["umount", point]).returncode != 0:
                subprocess.run(["umount", "--lazy", point])
        left = mounts_under(root)
        assert not left, f"could not unmount {left}; remove {root} by hand"
        shutil.rmtree(root.parent, ignore_errors=True)


def analyze_events(cmd: list[str], clip: str) -> list[dict[str, float]]:
    """`homesec analyze CLIP --json` -> the events' start and end (seconds)."""
    res = subprocess.run([*cmd, "analyze", clip, "--fps", CLIP_FPS, "--json"], capture_output=True,
                         text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    return [{"start": r["start_s"], "end": r["end_s"]} for r in rows if r.get("type") == "event"]


def test_deploy_on_arm64(arm64_root: Path) -> None:
    if not (DEV_CLIPS / CLIP).is_file():  # a clone outside the workplace (CI has ../shared)
        pytest.skip(f"the dev clip the arm64 analyze check compares is not present: {DEV_CLIPS / CLIP}")
    root = arm64_root
    # The root really is arm64, and its programs run (through qemu).
    assert in_root(root, "dpkg", "--print-architecture").stdout.strip() == ARCH
    assert in_root(root, "uname", "-m").stdout.strip() == "aarch64"

    copy_repo(root)
    in_root(root, "apt-get", "update", "-qq")
    in_root(root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
            "--no-install-recommends", "python3-numpy")
    res = in_root(root, f"{SRC}/deploy.sh", timeout=3000)
    out = res.stdout + res.stderr
    assert "not started" in out, out
    # deploy.sh says which versions it installed.
    assert "installed versions:" in out and "opencv-python-headless" in out, out

    venv_python = "/opt/homesec/venv/bin/python"
    probe = ("import platform, numpy, cv2, argon2; "
             "print(platform.machine()); print(numpy.__file__); print(cv2.__file__); "
             "print(cv2.imencode('.jpg', numpy.zeros((8, 8), numpy.uint8))[0])")
    lines = in_root(root, venv_python, "-c", probe).stdout.splitlines()
    assert lines[0] == "aarch64"
    # apt's numpy, not a pip copy that would break picamera2 and simplejpeg.
    assert lines[1] == "/usr/lib/python3/dist-packages/numpy/__init__.py", lines
    assert lines[2].startswith("/opt/homesec/venv/") and lines[3] == "True", lines
    # Every installed wheel is pure Python or built for aarch64.
    wheels = in_root(root, "sh", "-c",
                     "cat /opt/homesec/venv/lib/python3*/site-packages/*.dist-info/WHEEL").stdout
    tags = {ln.split(":", 1)[1].strip() for ln in wheels.splitlines() if ln.startswith("Tag:")}
    assert tags and all(t.endswith("-any") or "aarch64" in t for t in tags), sorted(tags)

    assert in_root(root, "homesec", "--version").stdout.strip() == f"homesec {homesec.__version__}"
    res = in_root(root, "setpriv", "--reuid=homesec", "--regid=homesec", "--init-groups",
                  "/opt/homesec/venv/bin/homesec", "check-config", "/etc/homesec/config.toml")
    assert "OK" in res.stdout, res.stdout

    # The same detector on the same clip finds the same events as here on x86-64.
    clip_dir = root / "tmp/clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEV_CLIPS / CLIP, clip_dir / CLIP)
    on_arm = analyze_events(["chroot", str(root), "/opt/homesec/venv/bin/homesec"], f"/tmp/clips/{CLIP}")
    here = analyze_events([sys.executable, "-m", "homesec"], str(DEV_CLIPS / CLIP))
    assert here, "the reference run found no event: the clip or the detector changed"
    assert len(on_arm) == len(here), (on_arm, here)
    frame = 1 / float(CLIP_FPS)
    for a, b in zip(on_arm, here, strict=True):
        assert abs(a["start"] - b["start"]) <= 2 * frame and abs(a["end"] - b["end"]) <= 2 * frame, (
            on_arm, here)
