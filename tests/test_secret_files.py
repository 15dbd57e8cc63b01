"""The web's cookie-signing key (state_dir/web-secret.key) against another local user who can
create names in the state dir (a checkout's or demo's state dir, not systemd's StateDirectory):
a planted symlink, a key file of theirs or one others may read is refused with the file's name,
never used, and nothing is written through a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from homesec.system.owner_only import UnsafeSecretFile, create_owner_only, read_owner_only
from homesec.web.security import SECRET_NAME, load_secret_key

KNOWN = b"k" * 64  # a key the attacker knows: signed cookies could be forged with it


def test_a_new_key_is_owner_only_and_stable(tmp_path: Path) -> None:
    key = load_secret_key(tmp_path)
    path = tmp_path / SECRET_NAME
    assert stat.S_IMODE(path.lstat().st_mode) == 0o600 and not path.is_symlink()
    assert load_secret_key(tmp_path) == key
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_NAME]  # no temp file left


def test_symlinked_key_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "attacker-key"
    theirs.write_bytes(KNOWN)
    os.chmod(theirs, 0o600)
    (tmp_path / SECRET_NAME).symlink_to(theirs)
    with pytest.raises(UnsafeSecretFile, match=rf"{SECRET_NAME}: is a symbolic link"):
        load_secret_key(tmp_path)


def test_dangling_symlink_is_refused_and_nothing_written_through_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "stolen-key"
    target.parent.mkdir()
    (tmp_path / SECRET_NAME).symlink_to(target)
    with pytest.raises(UnsafeSecretFile, match="symbolic link"):
        load_secret_key(tmp_path)
    assert not target.exists()


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRET_NAME
    path.write_bytes(KNOWN)
    os.chmod(path, 0o644)
    with pytest.raises(UnsafeSecretFile, match=r"mode 0644, must be 0600") as err:
        load_secret_key(tmp_path)
    assert str(path) in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_key_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRET_NAME
    path.write_bytes(KNOWN)
    os.chmod(path, 0o600)
    os.chown(path, 4242, -1)
    with pytest.raises(UnsafeSecretFile, match="belongs to uid 4242"):
        load_secret_key(tmp_path)


def test_create_never_writes_through_an_existing_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "new-secret"
    link.symlink_to(victim)
    with pytest.raises(FileExistsError):
        create_owner_only(link, b"secret")
    assert victim.read_bytes() == b"precious"
    fresh = tmp_path / "fresh"
    create_owner_only(fresh, b"secret")
    assert read_owner_only(fresh) == b"secret" and stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_a_fifo_at_the_key_name_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / SECRET_NAME, 0o600)
    with pytest.raises(UnsafeSecretFile, match="not a regular file"):
        load_secret_key(tmp_path)


def test_world_writable_state_dir_is_refused_by_web_and_daemon(tmp_path: Path) -> None:
    """Anybody could plant the key, the database (with their own password hash) or the event
    journal there: the web app and `homesec run` refuse to start, with one line that says so."""
    from homesec.config import ConfigError
    from homesec.system.owner_only import check_private_dir
    from tests.conftest import run_homesec

    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    with pytest.raises(ConfigError, match=r"may be written by any user \(mode 0777\)"):
        load_secret_key(state)
    assert not (state / SECRET_NAME).exists()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[camera]\nsource = "demo"\n[paths]\nstate_dir = "{state}"\n'
                   f'runtime_dir = "{tmp_path / "run"}"\n')
    res = run_homesec("run", "--config", str(cfg), timeout=60)
    assert res.returncode == 2, res.stderr[-800:]
    assert f"homesec: {state}: the state dir may be written by any user" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (state / "homesec.db").exists()
    os.chmod(state, 0o1777)  # sticky, like /tmp: others still create names first
    with pytest.raises(ConfigError):
        check_private_dir(state)
    os.chmod(state, 0o750)
    check_private_dir(state)
