"""The `homesec` command. Domain errors (bad config, unreadable video) become one clear line on
stderr and exit status 2 here, at the boundary; nothing below prints usage errors itself."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from homesec import __version__
from homesec.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load, summary

EXIT_CAMERA_HUNG = 75  # EX_TEMPFAIL: `homesec run` gave up on a camera driver that never let go


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _config_path(arg: str | None) -> str | None:
    """--config, else $HOMESEC_CONFIG, else /etc/homesec/config.toml if it exists, else defaults."""
    if arg:
        return arg
    env = os.environ.get("HOMESEC_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None


def load_config(arg: str | None) -> Config:
    """Load the config the user meant."""
    return load(_config_path(arg))


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_run(args: argparse.Namespace) -> int:
    """The capture daemon in the foreground."""
    from homesec.capture.daemon import Daemon
    from homesec.system.hardening import make_undumpable

    make_undumpable()  # the web service (same user) must not read the SMTP password from memory
    cfg = load_config(args.config)
    logging.getLogger("homesec").info("%s", summary(cfg))
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("homesec").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon = Daemon(cfg, stop=stop)
    daemon.run()
    if daemon.supervisor.hung:
        # A camera whose close never returned: its thread (and picamera2's atexit close) would
        # block a normal exit. Events are written (run() drained the recorder); leave at once,
        # systemd (Restart=always) starts a fresh process that can open the camera again.
        logging.getLogger("homesec").critical("camera hung: exiting for a restart")
        logging.shutdown()
        os._exit(EXIT_CAMERA_HUNG)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """Detector + event logic on a recorded file."""
    from homesec.analyze import analyze, format_line
    from homesec.camera.base import CameraError

    cfg = load_config(args.config) if args.config else Config()
    if "%" not in args.video and not Path(args.video).is_file():
        raise CLIError(f"no such video file: {args.video}")
    try:
        for obj in analyze(args.video, cfg, args.fps, args.decoder):
            print(format_line(obj, args.json), flush=True)
    except CameraError as exc:
        raise CLIError(f"cannot read {args.video}: {exc}") from None
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file."""
    cfg = load(args.file)
    print(f"{args.file}: OK: {summary(cfg)}")
    return 0


def cmd_example_config(args: argparse.Namespace) -> int:
    """Print the commented example config (every key with its default): deploy.sh writes it to
    /etc/homesec/config.toml, users read it to see what can be set."""
    from importlib.resources import files

    sys.stdout.write(files("homesec").joinpath("example-config.toml").read_text(encoding="utf-8"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole system on the generated demo scene."""
    from homesec.demo import run_demo

    return run_demo(Path(args.dir), port=args.port, seconds=args.seconds)


def cmd_web(args: argparse.Namespace) -> int:
    """The web UI under gunicorn (replaces this process, so systemd supervises gunicorn)."""
    path = _config_path(args.config)
    cfg = load(path)  # report a bad config here, as one line, not from inside gunicorn
    env = dict(os.environ)
    if path:
        env["HOMESEC_CONFIG"] = str(Path(path).resolve())
    else:
        env.pop("HOMESEC_CONFIG", None)
    if cfg.web.auth:
        from homesec.storage.store import Store
        from homesec.web import accounts

        store = Store(cfg.paths.db_path)
        try:
            if accounts.password_hash(store) is None:
                logging.getLogger("homesec").warning(
                    "no web password set: run `homesec passwd` (login is refused until then)")
        finally:
            store.close()
    conf = Path(__file__).with_name("web") / "gunicorn_conf.py"
    argv = [sys.executable, "-m", "gunicorn", "--config", str(conf)]
    if args.behind_nginx:
        from homesec.web.front import gunicorn_args

        argv += [*gunicorn_args(cfg), "homesec.web:create_app(behind_proxy=True)"]
    else:
        argv.append("homesec.web:create_app()")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def _read_new_password() -> str:
    """From the terminal (asked twice, not echoed) or one line of stdin; never from argv."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass("New web password: ")
        if getpass.getpass("Again: ") != first:
            raise CLIError("the passwords differ; nothing changed")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _ask_yes(question: str) -> bool:
    """A yes/no question on the terminal (default no)."""
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_passwd(args: argparse.Namespace) -> int:
    """Set the owner's web password (argon2id hash in the database). Every login session ends
    with it; API tokens too with --revoke-all (or when the owner says so at the prompt). No rate
    limit here: whoever runs this on the device is the owner, however many guesses others made."""
    from homesec.storage import audit
    from homesec.storage.store import Store
    from homesec.web import accounts

    cfg = load_config(args.config)
    password = _read_new_password()
    try:
        accounts.check_password_rules(password)
    except accounts.AccountError as exc:
        raise CLIError(f"{exc}; nothing changed") from None
    store = Store(cfg.paths.db_path)
    try:
        accounts.set_password(store, password)
        audit.log(store, "password_change", "owner (command line)")
        print("web password set; every browser must log in again")
        tokens = len(accounts.list_tokens(store))
        revoke = args.revoke_all or (tokens > 0 and sys.stdin.isatty() and _ask_yes(
            f"Also revoke all {tokens} API token(s)? Scripts using them will stop working."))
        if revoke:
            n = accounts.revoke_all_tokens(store)
            audit.log(store, "token_revoke", "owner (command line)", None, f"all {n} tokens")
            print(f"{n} API token(s) revoked")
        elif tokens:
            print(f"{tokens} API token(s) still valid (homesec passwd --revoke-all, or "
                  "homesec token revoke ID, ends them)")
    finally:
        store.close()
    return 0


def _local_time(ts: float | None) -> str:
    """A timestamp as local date and time, '-' for none."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def cmd_token(args: argparse.Namespace) -> int:
    """Create, list or revoke API bearer tokens."""
    from homesec.storage import audit
    from homesec.storage.store import Store
    from homesec.web import accounts

    cfg = load_config(args.config)
    store = Store(cfg.paths.db_path)
    try:
        if args.action == "create":
            try:
                info, secret = accounts.create_token(store, args.name)
            except accounts.AccountError as exc:
                raise CLIError(str(exc)) from None
            audit.log(store, "token_create", "owner (command line)", None, f"token '{info.name}'")
            print(secret)
            print(f"token {info.id} '{info.name}' created; it is shown only now "
                  "(send it as 'Authorization: Bearer <token>')", file=sys.stderr)
        elif args.action == "list":
            tokens = accounts.list_tokens(store)
            if not tokens:
                print("no tokens (homesec token create NAME makes one)", file=sys.stderr)
            for t in tokens:
                print(f"{t.id}\t{t.name}\tcreated {_local_time(t.created_ts)}\tlast used "
                      f"{_local_time(t.last_used_ts)}")
        elif not accounts.revoke_token(store, args.id):
            raise CLIError(f"no token {args.id}")
        else:
            audit.log(store, "token_revoke", "owner (command line)", None, f"token {args.id}")
            print(f"token {args.id} revoked")
    finally:
        store.close()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the alarm state, snooze, next schedule and camera health."""
    from homesec.alarm.persist import open_store
    from homesec.alarm.status_text import lines

    cfg = load_config(args.config)
    if not cfg.paths.db_path.exists():
        raise CLIError(f"no database at {cfg.paths.db_path} yet: has `homesec run` ever started?")
    store = open_store(cfg)
    try:
        print("\n".join(lines(cfg, store)))
    finally:
        store.close()
    return 0


def cmd_mail_test(args: argparse.Namespace) -> int:
    """Send a test email now; on failure one line: what went wrong and what to do."""
    from homesec.alerts.smtp import MailError
    from homesec.alerts.worker import outbox_line, send_test

    cfg = load_config(args.config)
    if not (cfg.mail.host or cfg.mail.catch_dir):
        raise CLIError("mail.host is not set in the config: nothing to send to")
    if not cfg.mail.recipients:
        raise CLIError("mail.recipients is empty: nobody to send to")
    try:
        print(send_test(cfg), flush=True)
    except MailError as exc:
        raise CLIError(f"mail-test failed: {exc}") from None
    if not cfg.mail.enabled:
        print("note: mail.enabled is false, so alerts are not sent yet", flush=True)
    line = outbox_line(cfg)
    if line:
        print(line, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="homesec", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"homesec {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("run", help="run the capture daemon in the foreground")
    s.add_argument("--config", help=f"config file (default $HOMESEC_CONFIG or {DEFAULT_CONFIG_PATH})")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("analyze", help="run the detector on a recorded video and print events")
    s.add_argument("video", help="video file, raw .h264, or image pattern like frames/%%06d.jpg")
    s.add_argument("--config", help="config file (default: built-in defaults)")
    s.add_argument("--fps", type=float, default=None,
                   help="timebase (default: the file's, else 25 for raw streams)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--decoder", choices=["pyav", "opencv"], default=None,
                   help="decode with PyAV (luma plane, default) or OpenCV (default: the config's "
                   "camera.decoder)")
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("check-config", help="validate a config file")
    s.add_argument("file")
    s.set_defaults(func=cmd_check_config)

    s = sub.add_parser("example-config", help="print a commented config with every key and default")
    s.set_defaults(func=cmd_example_config)

    s = sub.add_parser("web", help="serve the web UI and API with gunicorn")
    s.add_argument("--config", help=f"config file (default $HOMESEC_CONFIG or {DEFAULT_CONFIG_PATH})")
    s.add_argument("--behind-nginx", action="store_true",
                   help="listen on a Unix socket for the nginx front deploy.sh installs (trusts its "
                   "X-Forwarded-For, hands media to it); without it, web.bind:web.port")
    s.set_defaults(func=cmd_web)

    s = sub.add_parser("passwd", help="set the web password (asked, or one line on stdin)")
    s.add_argument("--config", help=f"config file (default $HOMESEC_CONFIG or {DEFAULT_CONFIG_PATH})")
    s.add_argument("--revoke-all", action="store_true",
                   help="also revoke every API token (login sessions always end)")
    s.set_defaults(func=cmd_passwd)

    s = sub.add_parser("token", help="API bearer tokens for scripts and phone shortcuts")
    tsub = s.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("create", help="create a token and print it (once)")
    t.add_argument("name", help="what the token is for, e.g. 'phone shortcut'")
    t2 = tsub.add_parser("list", help="list tokens (never their secrets)")
    t3 = tsub.add_parser("revoke", help="revoke a token by id")
    t3.add_argument("id", type=int)
    for tp in (t, t2, t3):
        tp.add_argument("--config",
                        help=f"config file (default $HOMESEC_CONFIG or {DEFAULT_CONFIG_PATH})")
    s.set_defaults(func=cmd_token)

    s = sub.add_parser("status", help="alarm state, snooze, next schedule, camera health")
    s.add_argument("--config", help=f"config file (default $HOMESEC_CONFIG or {DEFAULT_CONFIG_PATH})")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("mail-test", help="send a test email now and explain any failure")
    s.add_argument("--config", help=f"config file (default $HOMESEC_CONFIG or {DEFAULT_CONFIG_PATH})")
    s.set_defaults(func=cmd_mail_test)

    s = sub.add_parser("demo", help="run everything on the generated demo scene")
    s.add_argument("--dir", default="demo-data", help="where the demo keeps its state")
    s.add_argument("--port", type=int, default=8080, help="web UI port on 127.0.0.1")
    s.add_argument("--seconds", type=float, default=None, help="stop after this long")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `homesec` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, CLIError) as exc:
        print(f"homesec: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `homesec analyze clip.mp4 --json | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
