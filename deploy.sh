#!/usr/bin/env bash
# deploy.sh: install or upgrade homesec on a Raspberry Pi (or any Debian-family machine), in one
# command, run from a clone of the repository:
#
#     sudo ./deploy.sh              install, or upgrade in place (idempotent: run it again any time)
#     sudo ./deploy.sh --dry-run    print what it would do, change nothing
#     sudo ./deploy.sh --uninstall  remove the services and the code; keep config, data and user
#     sudo ./deploy.sh --purge      also remove config, data and the user (asks first; --yes skips)
#
# What it sets up:
#   /opt/homesec/venv       the code, in a venv made with --system-site-packages (see install_code)
#   /opt/homesec/src        a copy of the sources it was built from (units, README, this script)
#   /usr/local/bin/homesec  the `homesec` command for the admin (runs as user homesec)
#   /etc/homesec/           config.toml (written from the commented example only if absent, 0640
#                           root:homesec) and the optional SMTP password file smtp_password (0600)
#   /var/lib/homesec/       database and snapshots (user homesec)
#   /etc/systemd/system/    homesec-capture.service and homesec-web.service, enabled
#   /etc/nginx/conf.d/homesec.conf  Debian's nginx in front of gunicorn on web.port (generated from
#                           the config: timeouts, size limits, TLS, allowed networks; see
#                           homesec/system/nginx.py); gunicorn itself listens on /run/homesec/web.sock
#
# Services are (re)started only when the code or a unit changed, and only after the config passed
# `homesec check-config` with the new code. Without a running systemd (a chroot, an image being
# built) the units are installed and enabled but nothing is started.
set -euo pipefail

readonly PREFIX=/opt/homesec
readonly VENV=$PREFIX/venv
readonly SRC_COPY=$PREFIX/src
readonly STAMP=$PREFIX/.installed-sha256
readonly WRAPPER=/usr/local/bin/homesec
readonly CONF_DIR=/etc/homesec
readonly CONF=$CONF_DIR/config.toml
readonly CRED=$CONF_DIR/smtp_password
readonly STATE_DIR=/var/lib/homesec
readonly UNIT_DIR=/etc/systemd/system
readonly SVC_USER=homesec
readonly UNITS=(homesec-capture.service homesec-web.service)
readonly DEFAULT_PORT=8080
readonly NGINX_SITE=/etc/nginx/conf.d/homesec.conf
readonly NGINX_DROPIN=/etc/systemd/system/nginx.service.d/homesec.conf
readonly NGINX_DEFAULT_SITE=/etc/nginx/sites-enabled/default
readonly NGINX_USER=www-data
# Debian's interpreter, not whatever python3 comes first on PATH: the venv must see the apt
# packages (picamera2, libcamera) in its dist-packages.
readonly PYTHON=/usr/bin/python3

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SRC_DIR

DRY_RUN=0
ASSUME_YES=0
MODE=install
SUM=""
CHANGED=0      # set to 1 when code, units or the venv changed: services need a restart
STAGE=""

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

say() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }

# Run a command that changes the system, or only print it with --dry-run.
run() {
    if [[ $DRY_RUN == 1 ]]; then
        printf 'would run: %s\n' "$*"
    else
        "$@"
    fi
}

cleanup() {
    if [[ -n $STAGE ]]; then
        rm -rf -- "$STAGE" "$STAGE.constraints"
    fi
}
trap cleanup EXIT

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --dry-run) DRY_RUN=1 ;;
            --uninstall) MODE=uninstall ;;
            --purge) MODE=purge ;;
            --yes|-y) ASSUME_YES=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" ;;
        esac
        shift
    done
}

check_system() {
    if [[ $EUID -ne 0 && $DRY_RUN == 0 ]]; then
        die "run me as root: sudo $0"
    fi
    local id="" id_like=""
    if [[ -r /etc/os-release ]]; then
        # shellcheck disable=SC1091  # a system file, not part of this repository
        id=$(. /etc/os-release && printf '%s' "${ID:-}")
        # shellcheck disable=SC1091
        id_like=$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")
    fi
    if [[ ! -f /etc/debian_version && $id != debian && $id_like != *debian* ]]; then
        die "this installer is for Debian-family systems (Raspberry Pi OS, Debian, Ubuntu); found '${id:-unknown}'"
    fi
}

is_pi() {
    [[ -f /etc/rpi-issue ]] && return 0
    [[ -r /proc/device-tree/model ]] && grep -qa 'Raspberry Pi' /proc/device-tree/model
}

# True when systemd is the running init (sd_booted(3)): not in a chroot or a container without it.
systemd_running() {
    [[ -d /run/systemd/system ]]
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

install_packages() {
    # python3-venv brings ensurepip for the venv; ca-certificates lets SMTP verify TLS; systemd
    # provides systemctl (always present on Raspberry Pi OS; absent in a bare container/chroot);
    # nginx is the front that slow clients cannot stall (see install_front).
    local wanted=(python3 python3-venv ca-certificates systemd nginx)
    if is_pi; then
        # picamera2 and libcamera exist only as apt packages (Raspberry Pi's archive); they pull in
        # python3-numpy and python3-simplejpeg, compiled against that numpy. No recommends: on
        # Pi OS Lite they would drag in a desktop stack for the preview windows.
        wanted+=(python3-picamera2 python3-av python3-pil python3-piexif)  # what `import picamera2` needs
    else
        warn "not a Raspberry Pi: no Pi camera support; only camera.source = \"opencv\" (USB, RTSP/HTTP, files) or \"demo\" will work"
    fi
    local missing=() p
    for p in "${wanted[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "apt packages present: ${wanted[*]}"
        return
    fi
    say "installing apt packages: ${missing[*]}"
    run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    if [[ " ${missing[*]} " == *" python3-picamera2 "* && $DRY_RUN == 0 ]] \
        && ! apt-cache show python3-picamera2 >/dev/null 2>&1; then
        # A Pi running another distribution (e.g. Ubuntu): no Raspberry Pi archive, no picamera2.
        warn "python3-picamera2 is not available from your apt sources: the Pi camera will not work; use Raspberry Pi OS, or a USB/network camera (camera.source = \"opencv\")"
        local keep=()
        for p in "${missing[@]}"; do
            [[ $p =~ ^python3-(picamera2|av|pil|piexif)$ ]] || keep+=("$p")
        done
        missing=("${keep[@]}")
        [[ ${#missing[@]} -gt 0 ]] || return 0
    fi
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    CHANGED=1
}

create_user() {
    if id -u "$SVC_USER" >/dev/null 2>&1; then
        say "user $SVC_USER exists"
    else
        say "creating system user $SVC_USER"
        run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "homesec appliance" "$SVC_USER"
    fi
    # video: the camera devices (/dev/video*, /dev/media*, and on Pi OS /dev/dma_heap/*, /dev/vchiq).
    if getent group video >/dev/null && ! id -nG "$SVC_USER" 2>/dev/null | grep -qw video; then
        run usermod -a -G video "$SVC_USER"
    fi
}

# Copy what the package is built from into a private staging directory ($STAGE) and set SUM to
# its checksum. The checksum also covers the interpreter and the numpy pin, so a Python or numpy
# upgrade reinstalls too.
stage_sources() {
    STAGE=$(mktemp -d /tmp/homesec-deploy.XXXXXX)
    local items=(pyproject.toml README.md homesec systemd deploy.sh) extra
    for extra in templates static LICENSE; do
        if [[ -e $SRC_DIR/$extra ]]; then
            items+=("$extra")
        fi
    done
    tar -C "$SRC_DIR" --exclude=__pycache__ --exclude='*.pyc' -cf - "${items[@]}" | tar -C "$STAGE" -xf -
    SUM=$(
        cd "$STAGE"
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
        "$PYTHON" -VV
        numpy_pin
    )
    SUM=$(printf '%s\n' "$SUM" | sha256sum | cut -d' ' -f1)
}

# How numpy and OpenCV are taken without breaking the apt-built picamera2:
# picamera2, simplejpeg and PyAV come from apt, compiled against apt's numpy (python3-numpy). The
# venv is made with --system-site-packages so it sees them. pip would be free to install a newer
# numpy into the venv (opencv-python-headless >= 4.12 asks for numpy 2), which would shadow apt's
# and make those modules fail to import ("compiled using NumPy 1.x cannot be run in NumPy 2").
# So, when the system Python has a numpy, pip gets a constraint pinning numpy to exactly that
# version: pip keeps apt's numpy and picks an opencv-python-headless wheel that works with it
# (OpenCV's wheels built against numpy 2 run on numpy >= 1.x). OpenCV itself comes from PyPI, not
# apt: python3-opencv would pull a GUI stack of several hundred MB onto an SD card; the headless
# wheel is one self-contained file. Without a system numpy (not a Pi) nothing is pinned.
numpy_pin() {
    "$PYTHON" -c 'import numpy; print("numpy==" + numpy.__version__)' 2>/dev/null || true
}

venv_ok() {
    [[ -x $VENV/bin/python ]] || return 1
    # Same interpreter as the system's (a Debian upgrade from 3.11 to 3.13 breaks the old venv).
    [[ $("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null) == \
       $("$PYTHON" -c 'import sys; print(sys.version_info[:2])') ]] || return 1
    "$VENV/bin/python" -c 'import homesec' >/dev/null 2>&1
}

install_code() {
    local old=""
    stage_sources
    if [[ -f $STAMP ]]; then
        old=$(cat "$STAMP")
    fi
    if [[ $SUM == "$old" ]] && venv_ok; then
        say "code in $PREFIX is up to date"
        return
    fi
    CHANGED=1
    if ! venv_ok; then
        # Missing, half-installed, or made for another Python: a new venv is cheap.
        say "creating venv $VENV (--system-site-packages: sees apt's picamera2 and numpy)"
        run rm -rf -- "$VENV"
        run install -d -m 0755 "$PREFIX"
        run "$PYTHON" -m venv --system-site-packages "$VENV"
    fi
    local pin constraints=() cfile
    pin=$(numpy_pin)
    if [[ -n $pin ]]; then
        cfile=$STAGE.constraints
        printf '%s\n' "$pin" >"$cfile"
        constraints=(--constraint "$cfile")
        say "keeping the system's numpy: $pin"
        # A numpy pip put into the venv earlier (before apt's appeared) would shadow apt's.
        if "$VENV/bin/python" -c 'import numpy, sys; sys.exit(not numpy.__file__.startswith(sys.prefix))' 2>/dev/null; then
            say "removing the venv's own numpy in favour of the system's"
            run "$VENV/bin/pip" uninstall --quiet --yes numpy
        fi
    fi
    say "installing homesec into $VENV"
    # The build happens in the staging copy; homesec itself is always reinstalled (same version
    # number, new code), its dependencies only when missing or too old.
    run "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
        "${constraints[@]}" "$STAGE"
    run "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
        --no-deps --force-reinstall "$STAGE"
    if [[ -n $pin ]]; then
        rm -f -- "$cfile"
    fi
    # Keep a clean copy of the sources: the units, README and this script for --uninstall.
    run rm -rf -- "$STAGE/build" "$STAGE"/*.egg-info "$SRC_COPY.new"
    run cp -a "$STAGE" "$SRC_COPY.new"
    run rm -rf -- "$SRC_COPY"
    run mv "$SRC_COPY.new" "$SRC_COPY"
    run chmod -R go-w,a+rX "$SRC_COPY"
    if [[ $DRY_RUN == 0 ]]; then
        printf '%s\n' "$SUM" >"$STAMP"
    fi
    print_versions
}

# Which versions pip (or apt) gave us: the lines to quote in a bug report.
print_versions() {
    [[ $DRY_RUN == 0 ]] || return 0
    say "installed versions: $("$VENV/bin/python" -c '
import importlib.metadata as md, sys
names = ["homesec", "numpy", "opencv-python-headless", "av", "flask", "gunicorn", "argon2-cffi"]
out = ["python " + sys.version.split()[0]]
for name in names:
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    where = "apt" if "/dist-packages" in str(dist.locate_file("")) else "pip"
    out.append(f"{name} {dist.version} ({where})")
print(", ".join(out))
')"
}

# Set the mode (as `stat -c %a` shows it, e.g. 640) and owner of PATH when they differ.
ensure_perms() {
    local path=$1 mode=$2 owner=$3
    if [[ $(stat -c '%a %U:%G' "$path") != "$mode $owner" ]]; then
        say "setting $path to mode $mode, owner $owner"
        run chown "$owner" "$path"
        run chmod "$mode" "$path"
        CHANGED=1
    fi
}

ensure_dir() {
    local path=$1 mode=$2 owner=$3
    if [[ -d $path ]]; then
        ensure_perms "$path" "$mode" "$owner"
    else
        run install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$path"
    fi
}

# Write FILE with the content of stdin (mode MODE, owner OWNER) if it differs; 0 = changed.
put_file() {
    local dest=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f -- "$tmp"
        ensure_perms "$dest" "$mode" "$owner"
        return 1
    fi
    say "writing $dest"
    if [[ $DRY_RUN == 1 ]]; then
        rm -f -- "$tmp"
    else
        install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
        rm -f -- "$tmp"
    fi
    return 0
}

install_wrapper() {
    # `homesec passwd`, `homesec mail-test` etc. must run as the service user (files they create
    # must belong to it) and mail-test needs the SMTP password the way the service gets it: a
    # private credentials directory, never an argument or the environment.
    put_file "$WRAPPER" 755 root:root <<EOF || true
#!/bin/sh
# Installed by homesec's deploy.sh: runs the homesec command as user $SVC_USER.
set -eu
if [ "\$(id -u)" -ne 0 ]; then
    exec $VENV/bin/homesec "\$@"
fi
creds=\$(mktemp -d)
trap 'rm -rf "\$creds"' EXIT INT TERM
if [ -r $CRED ]; then
    install -m 0400 -o $SVC_USER $CRED "\$creds/smtp_password"
fi
chown $SVC_USER "\$creds"
chmod 0500 "\$creds"
runuser -u $SVC_USER -- env CREDENTIALS_DIRECTORY="\$creds" HOMESEC_CONFIG=$CONF $VENV/bin/homesec "\$@"
EOF
}

install_config() {
    ensure_dir "$CONF_DIR" 750 "root:$SVC_USER"
    ensure_dir "$STATE_DIR" 750 "$SVC_USER:$SVC_USER"
    if [[ -e $CONF ]]; then
        say "keeping existing $CONF"
    else
        local host
        host=$(hostname -s 2>/dev/null || hostname)
        say "new config from the commented example, with web.base_url = http://$host.local:$DEFAULT_PORT"
        if [[ $DRY_RUN == 0 ]]; then
            "$VENV/bin/homesec" example-config \
                | sed "s|^# base_url = \"http://homesec.local:$DEFAULT_PORT\"|base_url = \"http://$host.local:$DEFAULT_PORT\"|" \
                | put_file "$CONF" 640 "root:$SVC_USER" || true
        fi
        CHANGED=1
    fi
    # Not world-readable, whoever wrote them: the config may name mail accounts; the password
    # file is for root only (systemd hands it to the service as a credential).
    if [[ -e $CONF ]]; then
        ensure_perms "$CONF" 640 "root:$SVC_USER"
    fi
    if [[ -e $CRED ]]; then
        ensure_perms "$CRED" 600 root:root
    fi
    return 0
}

check_config() {
    if [[ $DRY_RUN == 1 ]]; then
        printf 'would run: homesec check-config %s (as %s)\n' "$CONF" "$SVC_USER"
        return
    fi
    say "checking $CONF"
    if ! runuser -u "$SVC_USER" -- "$VENV/bin/homesec" check-config "$CONF"; then
        die "$CONF is not valid (see above): fix it and run deploy.sh again; services were not restarted"
    fi
}

migrate_db() {
    # Apply database migrations now, as the service user, rather than racing between the two
    # services at their restart; also creates the database so `homesec passwd` works at once.
    [[ $CHANGED == 1 ]] || return 0
    say "applying database migrations"
    run runuser -u "$SVC_USER" -- "$VENV/bin/python" -c '
import os, sys
os.umask(0o027)
from homesec.config import load
from homesec.storage.store import Store
path = load(sys.argv[1]).paths.db_path
path.parent.mkdir(parents=True, exist_ok=True)
Store(path).close()
' "$CONF"
}

# True when the owner's web password is set (or the config turns the login off).
web_password_set() {
    runuser -u "$SVC_USER" -- "$VENV/bin/python" -c '
import sys
from homesec.web import accounts
from homesec.config import load
from homesec.storage.store import Store
cfg = load(sys.argv[1])
store = Store(cfg.paths.db_path)
try:
    sys.exit(0 if not cfg.web.auth or accounts.password_hash(store) else 1)
finally:
    store.close()
' "$CONF"
}

# On a terminal, offer to set the web password right away (homesec passwd asks twice, no echo);
# otherwise the closing message says how.
ask_web_password() {
    [[ $DRY_RUN == 0 && -t 0 && -t 1 ]] || return 0
    web_password_set && return 0
    local answer=""
    read -r -p "No web password yet. Set it now? [Y/n] " answer
    if [[ -z $answer || $answer == [yY]* ]]; then
        runuser -u "$SVC_USER" -- "$VENV/bin/homesec" passwd --config "$CONF" \
            || warn "password not set; run: sudo homesec passwd"
    fi
}

# nginx in front of gunicorn (gunicorn's threaded workers read requests with no timeout, so a few
# slow clients would stall arm/disarm). The site is generated from the config by the installed
# code, checked with `nginx -t`, and nginx reloaded only when it changed. nginx's workers
# (www-data) join group homesec: they connect to gunicorn's socket in /run/homesec and read media
# files for X-Accel-Redirect (both group-readable; the database and secrets are owner-only).
install_front() {
    local site dropin changed=0
    if ! id -nG "$NGINX_USER" 2>/dev/null | grep -qw "$SVC_USER"; then
        run usermod -a -G "$SVC_USER" "$NGINX_USER"
        changed=1
    fi
    if [[ $DRY_RUN == 1 ]]; then
        printf 'would write %s and %s from %s\n' "$NGINX_SITE" "$NGINX_DROPIN" "$CONF"
        return 0
    fi
    site=$("$VENV/bin/python" -m homesec.system.nginx "$CONF") \
        || die "could not make the nginx site from $CONF"
    dropin=$("$VENV/bin/python" -m homesec.system.nginx --systemd-dropin "$CONF") \
        || die "could not make the nginx drop-in from $CONF"
    # Debian's welcome page on port 80 is not part of an appliance.
    if [[ -L $NGINX_DEFAULT_SITE && $(readlink "$NGINX_DEFAULT_SITE") == */sites-available/default ]]; then
        say "disabling nginx's default site"
        rm -f -- "$NGINX_DEFAULT_SITE"
        changed=1
    fi
    local old_site=""
    [[ -f $NGINX_SITE ]] && old_site=$(cat "$NGINX_SITE")
    if printf '%s\n' "$site" | put_file "$NGINX_SITE" 644 root:root; then
        changed=1
    fi
    if ! nginx -t -q 2>/tmp/homesec-nginx-t.$$; then
        cat /tmp/homesec-nginx-t.$$ >&2
        rm -f /tmp/homesec-nginx-t.$$
        if [[ -n $old_site ]]; then
            printf '%s\n' "$old_site" >"$NGINX_SITE"
        else
            rm -f -- "$NGINX_SITE"
        fi
        die "nginx does not accept the site made from $CONF (see above; web.tls_cert/tls_key?): kept the old one, services were not restarted"
    fi
    rm -f /tmp/homesec-nginx-t.$$
    install -d -m 0755 "$(dirname "$NGINX_DROPIN")"
    if printf '%s\n' "$dropin" | put_file "$NGINX_DROPIN" 644 root:root; then
        changed=1
        systemd_running && run systemctl daemon-reload
    fi
    if command -v systemctl >/dev/null && ! systemctl is-enabled --quiet nginx 2>/dev/null; then
        run systemctl enable --quiet nginx
    fi
    if systemd_running; then
        if [[ $changed == 1 ]] || ! systemctl is-active --quiet nginx; then
            say "restarting nginx"
            run systemctl restart nginx
        fi
    fi
    [[ $changed == 0 ]] || CHANGED=1
    return 0
}

install_units() {
    local unit units_changed=0
    for unit in "${UNITS[@]}"; do
        if put_file "$UNIT_DIR/$unit" 644 root:root <"$SRC_DIR/systemd/$unit"; then
            units_changed=1
        fi
    done
    if [[ $units_changed == 1 ]]; then
        CHANGED=1
        systemd_running && run systemctl daemon-reload
    fi
    enable_units
}

enable_units() {
    local unit link
    if command -v systemctl >/dev/null; then
        # Works offline too (in a chroot it only creates the symlinks).
        for unit in "${UNITS[@]}"; do
            if ! systemctl is-enabled --quiet "$unit" 2>/dev/null; then
                run systemctl enable --quiet "$unit"
            fi
        done
    else
        for unit in "${UNITS[@]}"; do
            link=$UNIT_DIR/multi-user.target.wants/$unit
            if [[ ! -L $link ]]; then
                run install -d -m 0755 "$UNIT_DIR/multi-user.target.wants"
                run ln -sf "$UNIT_DIR/$unit" "$link"
            fi
        done
    fi
}

start_units() {
    if ! systemd_running; then
        say "systemd is not running here (chroot or container): units installed and enabled, not started"
        return
    fi
    local unit
    for unit in "${UNITS[@]}"; do
        if [[ $CHANGED == 1 ]]; then
            say "restarting $unit"
            run systemctl restart "$unit"
        elif ! systemctl is-active --quiet "$unit"; then
            say "starting $unit"
            run systemctl start "$unit"
        else
            say "$unit unchanged and running: not restarted"
        fi
    done
}

web_port() {
    "$VENV/bin/python" -c 'import sys; from homesec.config import load; print(load(sys.argv[1]).web.port)' \
        "$CONF" 2>/dev/null || echo "$DEFAULT_PORT"
}

print_next_steps() {
    local host port step=1 pw_step=""
    host=$(hostname -s 2>/dev/null || hostname)
    port=$DEFAULT_PORT
    [[ $DRY_RUN == 0 ]] && port=$(web_port)
    if [[ $DRY_RUN == 1 ]] || ! web_password_set 2>/dev/null; then
        pw_step="  $step. Set the web login password:         sudo homesec passwd"$'\n'
        step=$((step + 1))
    fi
    local done="is installed"
    [[ $DRY_RUN == 1 ]] && done="would be installed (dry run)"
    cat <<EOF

homesec $done. Open http://$host.local:$port on a phone or computer on the same network.

Next steps:
${pw_step}  $step. Mail alerts: put the SMTP (app) password in $CRED (root only):
         sudo sh -c 'umask 077; cat > $CRED'   (type it, Enter, Ctrl-D)
     then fill in [mail] in $CONF, and:   sudo systemctl restart homesec-capture
  $((step + 1)). Send a test email:                  sudo homesec mail-test
  Logs: journalctl -u homesec-capture -u homesec-web -f
EOF
}

do_install() {
    check_system
    [[ $DRY_RUN == 1 ]] && say "dry run: nothing is changed"
    install_packages
    create_user
    install_code
    install_wrapper
    install_config
    check_config
    migrate_db
    ask_web_password
    install_units
    start_units
    install_front
    if [[ $CHANGED == 0 ]]; then
        say "nothing changed"
    fi
    print_next_steps
}

remove_units() {
    local unit
    for unit in "${UNITS[@]}"; do
        if systemd_running; then
            run systemctl disable --now --quiet "$unit" 2>/dev/null || true
        elif command -v systemctl >/dev/null; then
            run systemctl disable --quiet "$unit" 2>/dev/null || true
        fi
        run rm -f -- "$UNIT_DIR/multi-user.target.wants/$unit" "$UNIT_DIR/$unit"
    done
    systemd_running && run systemctl daemon-reload
    return 0
}

confirm() {
    [[ $ASSUME_YES == 1 ]] && return 0
    local answer=""
    if [[ ! -t 0 ]]; then
        die "--purge deletes $CONF_DIR and $STATE_DIR (config, events, snapshots): add --yes to confirm"
    fi
    read -r -p "$1 [y/N] " answer
    [[ $answer == [yY] || $answer == [yY][eE][sS] ]]
}

do_uninstall() {
    check_system
    if [[ $MODE == purge ]] && ! confirm "Delete $CONF_DIR, $STATE_DIR (config, events, snapshots) and user $SVC_USER?"; then
        die "nothing removed"
    fi
    say "removing the services and $PREFIX"
    remove_units
    if [[ -e $NGINX_SITE || -e $NGINX_DROPIN ]]; then
        say "removing homesec's nginx site (nginx itself stays installed)"
        run rm -f -- "$NGINX_SITE" "$NGINX_DROPIN"
        if systemd_running; then
            run systemctl daemon-reload
            run systemctl reload-or-restart nginx 2>/dev/null || true
        fi
    fi
    run rm -rf -- "$PREFIX" "$WRAPPER"
    if [[ $MODE == purge ]]; then
        say "removing $CONF_DIR, $STATE_DIR and user $SVC_USER"
        run rm -rf -- "$CONF_DIR" "$STATE_DIR" /run/homesec
        if id -u "$SVC_USER" >/dev/null 2>&1; then
            run userdel "$SVC_USER"
        fi
        if getent group "$SVC_USER" >/dev/null; then
            run groupdel "$SVC_USER"
        fi
    else
        say "kept $CONF_DIR (config), $STATE_DIR (events, snapshots) and user $SVC_USER; --purge removes them"
    fi
}

main() {
    parse_args "$@"
    case $MODE in
        install) do_install ;;
        uninstall|purge) do_uninstall ;;
    esac
}

main "$@"
