"""deploy.sh for real on a clean Debian: debootstrap a minimal bookworm (the Debian under Raspberry
Pi OS Bookworm), copy the repository in, run deploy.sh in a chroot (no running systemd there: it
must install and enable the units and start nothing), then check what a user would find: the
service user, files and their permissions, the venv, the `homesec` command, the daemon on the demo
scene and gunicorn's login page as the service user, a second run that changes nothing, a config
error that stops the run. Then, with systemd-nspawn, the installed system is booted with systemd
and the units run for real (notify, sandbox, credential, watchdog restart, web independent of
capture). Finally --uninstall and --purge.

Needs root, debootstrap and network access to a Debian mirror and PyPI. The debootstrap packages
are cached in $HOMESEC_TEST_CACHE (default /var/cache/homesec-tests) between runs.
"""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import homesec
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.slow

SUITE = "bookworm"
MIRROR = os.environ.get("HOMESEC_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("HOMESEC_TEST_CACHE", "/var/cache/homesec-tests"))
SRC = "/usr/src/homesec"  # where the "git clone" lives inside the chroot
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WEB_PORT = 18089


def mirror_reachable() -> bool:
    try:
        with urllib.request.urlopen(f"{MIRROR}/dists/{SUITE}/Release", timeout=15) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def chroot_env() -> dict[str, str]:
    """A clean environment, as after `sudo -i`: nothing of the test runner's pip/venv settings."""
    env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def mounts_under(root: Path) -> list[str]:
    """Mount points inside `root`, deepest first."""
    prefix = str(root.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].encode().decode("unicode_escape")
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def mount_api(root: Path) -> None:
    """/proc and /dev for the chroot (apt, pip and the daemon need them)."""
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)


def umount_api(root: Path) -> None:
    """Undo mount_api (systemd-nspawn brings its own)."""
    for point in mounts_under(root):
        subprocess.run(["umount", point], check=True)


def debootstrap(root: Path) -> None:
    """A minimal Debian in `root`, from cached packages when there are some."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{SUITE}-minbase-debs.tgz"
    if not tarball.exists():
        scratch = CACHE / "make-tarball"
        shutil.rmtree(scratch, ignore_errors=True)
        partial = tarball.with_suffix(".partial.tgz")
        subprocess.run(["debootstrap", "--variant=minbase", f"--make-tarball={partial}", SUITE,
                        str(scratch), MIRROR], check=True, capture_output=True, timeout=1200)
        partial.rename(tarball)
        shutil.rmtree(scratch, ignore_errors=True)
    res = subprocess.run(["debootstrap", "--variant=minbase", f"--unpack-tarball={tarball}", SUITE,
                          str(root), MIRROR], capture_output=True, text=True, timeout=1200)
    if res.returncode != 0:  # a stale cache (packages superseded on the mirror): fetch afresh
        tarball.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR], check=True,
                       capture_output=True, timeout=1200)


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        pytest.skip("needs debootstrap (apt-get install debootstrap)")
    if not mirror_reachable():
        pytest.skip(f"Debian mirror {MIRROR} not reachable")
    root = tmp_path_factory.mktemp("debian") / "root"
    debootstrap(root)
    # The host's network setup: name servers, and locally added CAs (a proxy that inspects TLS
    # would otherwise make pip fail); deploy.sh's apt-get install ca-certificates picks them up.
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    local_cas = Path("/usr/local/share/ca-certificates")
    if local_cas.is_dir():
        shutil.copytree(local_cas, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
    # Packages must not try to start daemons in a chroot (the Debian convention).
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        mount_api(root)
        yield root
    finally:
        for point in mounts_under(root):
            if subprocess.run(["umount", point]).returncode != 0:
                subprocess.run(["umount", "--lazy", point])
        left = mounts_under(root)
        # Never delete through a mount that is still there (it would be the host's /dev).
        assert not left, f"could not unmount {left}; remove {root} by hand"
        shutil.rmtree(root.parent, ignore_errors=True)


def in_root(root: Path, *cmd: str, check: bool = True, timeout: float = 1200,
            **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command inside the chroot with a clean environment."""
    res = subprocess.run(["chroot", str(root), *cmd], env=chroot_env(), capture_output=True,
                         text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def copy_repo(root: Path) -> None:
    """What a `git clone` would hold (tracked and new files, nothing git ignores)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
    dest = root / SRC.lstrip("/")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def on_terminal(root: Path, argv: list[str], answers: list[tuple[str, str]],
                timeout: float = 600) -> tuple[int, str]:
    """Run `argv` in the chroot on a pseudo-terminal, typing each answer once its prompt shows
    (typed-ahead input would be flushed by getpass). Returns (exit status, everything shown)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the session leader with the pty as its terminal
        os.execve("/usr/sbin/chroot", ["chroot", str(root), *argv], chroot_env())
    shown, pending, pos = b"", list(answers), 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and (i := shown.find(pending[0][0].encode(), pos)) >= 0:
                pos = i + len(pending[0][0])
                os.write(fd, pending.pop(0)[1].encode())
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the terminal closed, the program has ended
                    break
                if not chunk:
                    break
                shown += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def snapshot(root: Path, *paths: str) -> dict[str, tuple[Any, ...]]:
    """Mode, owner, mtime and content hash of every file under `paths` (inside the chroot)."""
    out: dict[str, tuple[Any, ...]] = {}
    for top in paths:
        base = root / top.lstrip("/")
        items = [base] if not base.is_dir() else [base, *base.rglob("*")]
        for p in items:
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, digest)
    return out


def passwd_entry(root: Path, user: str) -> list[str]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return fields
    raise AssertionError(f"no user {user} in /etc/passwd")


def mode_owner(root: Path, path: str) -> tuple[int, str, str]:
    st = (root / path.lstrip("/")).stat()
    ids = {int(f[2]): f[0] for f in (ln.split(":") for ln in (root / "etc/passwd").read_text().splitlines())}
    gids = {int(f[2]): f[0] for f in (ln.split(":") for ln in (root / "etc/group").read_text().splitlines())}
    return stat.S_IMODE(st.st_mode), ids.get(st.st_uid, str(st.st_uid)), gids.get(st.st_gid, str(st.st_gid))


def test_deploy_on_fresh_debian(debian_root: Path) -> None:
    root = debian_root
    copy_repo(root)
    # A Pi has apt's numpy (picamera2 depends on it): the venv must use it, not a pip copy.
    in_root(root, "apt-get", "update", "-qq")
    in_root(root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
            "--no-install-recommends", "python3-numpy")
    # A password file written carelessly (world-readable) before the install.
    (root / "etc/homesec").mkdir()
    (root / "etc/homesec/smtp_password").write_text("app-password\n")
    (root / "etc/homesec/smtp_password").chmod(0o644)

    # --dry-run changes nothing.
    before = snapshot(root, "/etc", "/opt", "/usr/local")
    res = in_root(root, f"{SRC}/deploy.sh", "--dry-run")
    assert "would run:" in res.stdout
    assert snapshot(root, "/etc", "/opt", "/usr/local") == before

    t0 = time.monotonic()
    res = in_root(root, f"{SRC}/deploy.sh")
    first_run_s = time.monotonic() - t0
    out = res.stdout + res.stderr
    assert "not started" in out, out
    assert ":8080" in out and "homesec passwd" in out and "mail-test" in out, out
    print(f"first deploy.sh run: {first_run_s:.0f} s")

    # The service user: a system account without a login shell, in group video.
    user = passwd_entry(root, "homesec")
    assert int(user[2]) < 1000 and user[6] == "/usr/sbin/nologin" and user[5] == "/var/lib/homesec"
    assert "homesec" in in_root(root, "id", "-nG", "homesec").stdout.split()
    assert "video" in in_root(root, "id", "-nG", "homesec").stdout.split()

    # Files and permissions: config and password not world-readable, password root-only.
    assert mode_owner(root, "/etc/homesec") == (0o750, "root", "homesec")
    assert mode_owner(root, "/etc/homesec/config.toml") == (0o640, "root", "homesec")
    assert mode_owner(root, "/etc/homesec/smtp_password") == (0o600, "root", "root")
    assert mode_owner(root, "/var/lib/homesec") == (0o750, "homesec", "homesec")
    assert mode_owner(root, "/usr/local/bin/homesec")[0] == 0o755
    config = (root / "etc/homesec/config.toml").read_text()
    assert "[camera]" in config and "\nbase_url = \"http://" in config
    for unit in ("homesec-capture.service", "homesec-web.service"):
        installed = root / "etc/systemd/system" / unit
        assert installed.read_text() == (REPO / "systemd" / unit).read_text()
        link = root / "etc/systemd/system/multi-user.target.wants" / unit
        assert link.is_symlink(), f"{unit} not enabled"
    # nginx in front of gunicorn: the site made from the config passes `nginx -t`, listens on
    # web.port, and nginx's workers may reach gunicorn's socket and the media (group homesec).
    site = (root / "etc/nginx/conf.d/homesec.conf").read_text()
    assert "listen 0.0.0.0:8080;" in site and "unix:/run/homesec/web.sock" in site
    res = in_root(root, "nginx", "-t")
    assert "test is successful" in res.stderr, res.stderr
    assert "homesec" in in_root(root, "id", "-nG", "www-data").stdout.split()
    assert not (root / "etc/nginx/sites-enabled/default").exists()
    assert "IPAddressAllow=" in (root / "etc/systemd/system/nginx.service.d/homesec.conf").read_text()
    assert "installed versions:" in out and "numpy 1.24" in out and "(apt)" in out, out
    # systemd (installed by deploy.sh) accepts the units with the real ExecStart binary.
    res = in_root(root, "systemd-analyze", "verify", "/etc/systemd/system/homesec-capture.service",
                  "/etc/systemd/system/homesec-web.service", check=False)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr

    # The venv sees the system packages and uses apt's numpy; OpenCV works with it.
    assert "include-system-site-packages = true" in (root / "opt/homesec/venv/pyvenv.cfg").read_text()
    probe = ("import numpy, cv2; print(numpy.__file__); "
             "print(cv2.imencode('.jpg', numpy.zeros((8, 8), numpy.uint8))[0])")
    res = in_root(root, "/opt/homesec/venv/bin/python", "-c", probe)
    assert res.stdout.splitlines() == ["/usr/lib/python3/dist-packages/numpy/__init__.py", "True"]

    # The command, as the admin and as the service user.
    assert in_root(root, "homesec", "--version").stdout.strip() == f"homesec {homesec.__version__}"
    res = in_root(root, "setpriv", "--reuid=homesec", "--regid=homesec", "--init-groups",
                  "/opt/homesec/venv/bin/homesec", "check-config", "/etc/homesec/config.toml")
    assert "OK" in res.stdout

    # Run on a terminal, deploy.sh offers to set the web password, which homesec passwd asks twice.
    assert "homesec passwd" in out  # not set yet: the closing message said how
    status, shown = on_terminal(root, [f"{SRC}/deploy.sh"], [
        ("Set it now? [Y/n]", "\n"), ("New web password:", "correct horse 42\n"),
        ("Again:", "correct horse 42\n")])
    assert status == 0, shown
    assert "web password set" in shown and "nothing changed" in shown, shown
    assert "homesec passwd" not in shown.split("Next steps:")[1], shown
    with sqlite3.connect(f"file:{root}/var/lib/homesec/homesec.db?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 1

    run_daemon(root)
    run_web(root)

    # A second run changes nothing and restarts nothing.
    watched = ("/opt/homesec", "/etc/homesec", "/etc/systemd/system", "/usr/local/bin/homesec",
               "/etc/nginx")
    before = snapshot(root, *watched)
    t0 = time.monotonic()
    res = in_root(root, f"{SRC}/deploy.sh")
    print(f"second deploy.sh run: {time.monotonic() - t0:.1f} s")
    assert "nothing changed" in res.stdout, res.stdout
    assert snapshot(root, *watched) == before

    # A config error stops the run before anything is restarted, with the key named.
    config = root / "etc/homesec/config.toml"
    good = config.read_text()
    config.write_text(good.replace("[alarm]\n", "[alarm]\nexit_dealy_s = 30\n"))
    res = in_root(root, f"{SRC}/deploy.sh", check=False)
    assert res.returncode != 0 and "exit_dealy_s" in res.stderr and "not restarted" in res.stderr
    config.write_text(good)

    # On a Pi whose apt sources lack Raspberry Pi's archive: a warning, not a failure.
    (root / "etc/rpi-issue").write_text("Raspberry Pi reference (test)\n")
    res = in_root(root, f"{SRC}/deploy.sh")
    (root / "etc/rpi-issue").unlink()
    assert "python3-picamera2 is not available" in res.stderr, res.stderr
    assert "nothing changed" in res.stdout, res.stdout

    # The units under a real systemd. Where containers cannot boot (no systemd-nspawn, or not
    # allowed), say so loudly and go on with the rest.
    if shutil.which("systemd-nspawn") and shutil.which("nsenter"):
        umount_api(root)
        t0 = time.monotonic()
        try:
            booted = boot_with_systemd(root)
        finally:
            mount_api(root)
        print(f"boot under systemd-nspawn and checks: {time.monotonic() - t0:.0f} s")
    else:
        booted = False
    if not booted:
        warnings.warn("the units were NOT run under systemd: systemd-nspawn missing (apt-get "
                      "install systemd-container) or a container cannot boot here", stacklevel=1)

    # --uninstall: units and code go, config, data and user stay.
    in_root(root, f"{SRC}/deploy.sh", "--uninstall")
    assert not (root / "opt/homesec").exists()
    assert not (root / "usr/local/bin/homesec").exists()
    assert not (root / "etc/systemd/system/homesec-capture.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/homesec-web.service").exists()
    assert (root / "etc/homesec/config.toml").exists() and (root / "var/lib/homesec/homesec.db").exists()
    passwd_entry(root, "homesec")

    # --purge asks first; without a terminal and without --yes it refuses and removes nothing.
    res = in_root(root, f"{SRC}/deploy.sh", "--purge", check=False, stdin=subprocess.DEVNULL)
    assert res.returncode != 0 and "--yes" in res.stderr
    assert (root / "etc/homesec/config.toml").exists()
    in_root(root, f"{SRC}/deploy.sh", "--purge", "--yes")
    assert not (root / "etc/homesec").exists() and not (root / "var/lib/homesec").exists()
    assert "homesec:" not in (root / "etc/passwd").read_text()


def demo_config(root: Path) -> None:
    """A config for the demo scene next to the real one, readable by the service user."""
    demo = root / "etc/homesec/demo.toml"
    demo.write_text(f"""
[camera]
source = "demo"
width = 640
height = 360
fps = 10
[web]
bind = "127.0.0.1"
port = {WEB_PORT}
""")
    in_root(root, "chown", "root:homesec", "/etc/homesec/demo.toml")
    demo.chmod(0o640)


def as_homesec(root: Path) -> list[str]:
    """argv prefix: the installed homesec command, run as the service user inside the chroot."""
    return ["chroot", str(root), "setpriv", "--reuid=homesec", "--regid=homesec", "--init-groups",
            "/opt/homesec/venv/bin/homesec"]


def run_daemon(root: Path) -> None:
    """Start `homesec run` on the demo scene as the service user (with the runtime directory
    systemd would create) and check that it records a motion event with a snapshot."""
    demo_config(root)
    in_root(root, "install", "-d", "-m", "0750", "-o", "homesec", "-g", "homesec", "/run/homesec")
    daemon = subprocess.Popen([*as_homesec(root), "run", "--config", "/etc/homesec/demo.toml"],
                              env=chroot_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        status = root / "run/homesec/status.json"

        def status_written() -> bool:
            if daemon.poll() is not None:  # say why, rather than wait out the deadline
                raise AssertionError(f"homesec run exited with {daemon.returncode}: "
                                     f"{daemon.stdout.read() if daemon.stdout else ''}")
            return status.exists()

        wait_for(status_written, 60, what="the daemon's status file", interval=0.5)

        def events() -> int:
            with sqlite3.connect(f"file:{root}/var/lib/homesec/homesec.db?mode=ro", uri=True) as db:
                return db.execute("SELECT count(*) FROM events").fetchone()[0]

        # The demo scene's first person crosses at 5 s.
        wait_for(events, 60, what="a motion event in the database", interval=0.5)
        media = list((root / "var/lib/homesec/media").rglob("*.jpg"))
        assert media and all(p.stat().st_uid == (root / "var/lib/homesec").stat().st_uid for p in media)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            out, _ = daemon.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            out, _ = daemon.communicate()
    assert daemon.returncode == 0, out


def run_web(root: Path) -> None:
    """`homesec web` (gunicorn) as the service user serves the login page."""
    web = subprocess.Popen([*as_homesec(root), "web", "--config", "/etc/homesec/demo.toml"],
                           env=chroot_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        def login_page() -> str | None:
            assert web.poll() is None, f"homesec web exited with {web.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/login", timeout=5) as r:
                    return r.read().decode() if r.status == 200 else None
            except (urllib.error.URLError, OSError):
                return None

        page = wait_for(login_page, 60, what="the login page from gunicorn", interval=0.5)
        assert 'type="password"' in page
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            web.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            web.kill()
            web.communicate()


class Container:
    """The deployed root booted with systemd as PID 1 (systemd-nspawn, no network), so the units
    run for real: sandbox, Type=notify, watchdog, credentials."""

    def __init__(self, root: Path, log: Path) -> None:
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(root), "-b", "--register=no", "--keep-unit",
             "--private-network", "-M", "homesectest"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.logpath = log

    def pid1(self) -> int | None:
        """The container's systemd (the child of systemd-nspawn)."""
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        pid = self.pid1()
        assert pid is not None, "container not running:\n" + self.logpath.read_text()[-3000:]
        res = subprocess.run(["nsenter", "-t", str(pid), "-a", "env", "-i", f"PATH={PATH}", *cmd],
                             capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: {res.returncode}\n{res.stdout}{res.stderr}")
        return res

    def prop(self, unit: str, name: str) -> str:
        return self.run("systemctl", "show", unit, "-p", name, "--value").stdout.strip()

    def booted(self) -> bool:
        if self.proc.poll() is not None or self.pid1() is None:
            return False
        state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
        return state in ("running", "degraded")

    def stop(self) -> None:
        if self.proc.poll() is None and self.pid1() is not None:
            self.run("systemctl", "poweroff", check=False)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def boot_with_systemd(root: Path) -> bool:
    """Boot the installed system and check the services as systemd runs them; False when no
    container could be booted here."""
    # What a user does next: pick the camera (here the demo scene) in the config. And a drop-in,
    # as `systemctl edit` would write, shortens the watchdog so the test need not wait 30 s.
    config = root / "etc/homesec/config.toml"
    config.write_text(config.read_text().replace('# source = "picamera2"', 'source = "demo"'))
    dropin = root / "etc/systemd/system/homesec-capture.service.d"
    dropin.mkdir(exist_ok=True)
    (dropin / "watchdog.conf").write_text("[Service]\nWatchdogSec=5\n")
    container = Container(root, root.parent / "console.log")
    try:
        deadline = time.monotonic() + 120
        while not container.booted():
            if time.monotonic() > deadline or container.proc.poll() is not None:
                print("systemd could not boot in a container on this machine:\n"
                      + container.logpath.read_text()[-2000:])
                return False
            time.sleep(0.5)
        unit = "homesec-capture.service"
        # Type=notify: "active" only after READY=1, i.e. after the first frame.
        wait_for(lambda: container.prop(unit, "ActiveState") == "active", 60, what="capture active",
                 interval=0.5)
        assert container.prop(unit, "StatusText") == "capturing"
        assert container.prop(unit, "WatchdogUSec") == "5s"
        pid = container.prop(unit, "MainPID")
        # The sandbox is in force: no new privileges, no capabilities, a seccomp filter.
        status = container.run("cat", f"/proc/{pid}/status").stdout
        assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status
        assert "Seccomp:\t2" in status
        assert f"Uid:\t{passwd_entry(root, 'homesec')[2]}\t" in status
        # The password file reaches the service as a credential only it can read.
        cred = f"/run/credentials/{unit}/smtp_password"
        assert container.run("cat", cred).stdout == "app-password\n"
        # It records events under the sandbox (state dir writable, everything else read-only).
        wait_for(lambda: re.search(r"event \d+ started", container.run(
            "journalctl", "-u", unit, "--no-pager").stdout), 60, what="an event in the journal", interval=0.5)

        # A hung daemon (stopped, so no more WATCHDOG=1) is killed and restarted by systemd.
        container.run("sh", "-c", f"kill -STOP {pid}")
        wait_for(lambda: container.prop(unit, "NRestarts") not in ("", "0")
                 and container.prop(unit, "ActiveState") == "active"
                 and container.prop(unit, "MainPID") not in ("0", pid),
                 120, what="systemd to restart the hung daemon", interval=0.5)
        journal = container.run("journalctl", "-u", unit, "--no-pager").stdout
        assert "Watchdog timeout" in journal, journal[-3000:]

        # Without the password file the service still starts (SetCredential= fallback): empty.
        container.run("rm", "/etc/homesec/smtp_password")
        container.run("systemctl", "restart", unit)
        assert container.prop(unit, "ActiveState") == "active"
        assert container.run("cat", cred).stdout.strip() == ""

        # The web UI under its own sandbox (no devices, W^X memory, /proc limited to processes).
        web = "homesec-web.service"
        wait_for(lambda: container.prop(web, "ActiveState") == "active", 60, what="web active",
                 interval=0.5)
        # ... through nginx on web.port (gunicorn listens on its Unix socket only).
        probe = ("import urllib.request; r = urllib.request.urlopen("
                 "'http://127.0.0.1:8080/login', timeout=5); print(r.status, r.headers['Server'])")
        try:
            wait_for(lambda: container.run("/opt/homesec/venv/bin/python", "-c", probe,
                                           check=False).stdout.strip() == "200 nginx",
                     60, what="the login page from homesec-web behind nginx under systemd",
                     interval=0.5)
        except AssertionError as exc:
            why = container.run("journalctl", "--no-pager", "-n", "60", "-u", "nginx", "-u", web,
                                check=False).stdout
            raise AssertionError(f"{exc}\n{why}") from None
        assert container.run("test", "-S", "/run/homesec/web.sock", check=False).returncode == 0
        # The web service cannot read the capture service's SMTP credential (same user).
        web_pid = container.prop(web, "MainPID")
        uid = passwd_entry(root, "homesec")[2]
        peek = container.run("nsenter", "-t", web_pid, "-m", "-S", uid, "-G", uid, "cat", cred,
                             check=False)
        assert peek.returncode != 0 and "app-password" not in peek.stdout, peek
        # ... and it stays up while the capture daemon is stopped (Wants=, not Requires=).
        container.run("systemctl", "stop", unit)
        assert container.prop(web, "ActiveState") == "active"
        return True
    finally:
        container.stop()
