// homesec web UI: makes the server-rendered pages live. Everything still works without this
// file (the forms post to the server); with it, the home page polls /api/v1/status, counts down
// while arming, arms/disarms through the JSON API, refreshes the event list and shows the live
// view only while the page is visible (the daemon encodes frames only while someone watches).
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  // Confirmation for destructive forms (data-confirm attribute; no inline handlers under CSP).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }

  // Relative times ("2 min ago") next to the box's local times, refreshed every 30 s.
  function ago(ts) {
    const s = Math.round(Date.now() / 1000 - ts);
    if (s < 0) return "";
    if (s < 60) return "just now";
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    if (s < 7 * 86400) return `${Math.floor(s / 86400)} d ago`;
    return "";
  }
  function relativeTimes() {
    for (const el of document.querySelectorAll("time[data-ts]")) {
      let rel = el.nextElementSibling;
      if (!rel || !rel.classList.contains("ago")) {
        rel = document.createElement("span");
        rel.className = "ago";
        el.after(rel);
      }
      const text = ago(parseFloat(el.dataset.ts));
      rel.textContent = text ? ` (${text})` : "";
    }
  }
  relativeTimes();
  setInterval(relativeTimes, 30000);

  const stateBox = document.getElementById("state");
  if (!stateBox) return; // not the home page

  const $ = (id) => document.getElementById(id);
  // The countdown runs on this device's monotonic clock from the server's `remaining_s`, so a
  // phone whose clock is off still counts down correctly. The local deadline is set when an
  // answer arrives (never before the server's deadline, so ARMED is never shown early), only
  // moves earlier while the same arming runs (a later, slower answer cannot make it rise), and
  // the number shown never exceeds the delay that was asked for.
  const mono = () => performance.now() / 1000;
  let current = { state: stateBox.dataset.state, changed_ts: null, changed_by: "",
    deadline_ts: parseFloat(stateBox.dataset.deadline) || null,
    delay_s: parseFloat(stateBox.dataset.delay) || null };
  // (The same countdown serves the entry delay: "pending" counts down to the alert.)
  const counting = (s) => s === "arming" || s === "pending";
  let localDeadline = counting(stateBox.dataset.state)
    ? mono() + (parseFloat(stateBox.dataset.remaining) || 0) : null;
  let captureRunning = $("capture-warning") ? $("capture-warning").hidden : true;
  let armSeq = 0; // bumped by every arm/disarm: a status poll sent before it is stale
  let confirmed = false; // the local countdown ran out and a poll was asked for
  let topEvent = null;

  function fmtTime(ts) {
    if (!ts) return "-";
    const d = new Date(ts * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function setArm(arm) {
    const sameArming = counting(arm.state) && current.state === arm.state &&
      arm.deadline_ts === current.deadline_ts &&
      arm.entry_deadline_ts === current.entry_deadline_ts && localDeadline != null;
    let deadline = counting(arm.state) && arm.remaining_s != null ? mono() + arm.remaining_s : null;
    if (sameArming && deadline != null) deadline = Math.min(deadline, localDeadline);
    if (!sameArming) confirmed = false;
    current = arm;
    localDeadline = deadline;
    drawArm();
  }

  function drawArm() {
    let state = current.state;
    let left = null;
    if (counting(state)) {
      left = localDeadline == null ? 0 : localDeadline - mono();
      if (left <= 0) {
        state = state === "arming" ? "armed" : "triggered";
        if (!confirmed) { confirmed = true; poll(); } // the server says so too, or corrects us
      }
    }
    stateBox.className = `state state-${state}`;
    stateBox.dataset.state = state;
    $("state-label").textContent = state.toUpperCase();
    $("countdown").hidden = !counting(state);
    if (counting(state)) {
      $("countdown-what").textContent = state === "pending" ? "alert in" : "armed in";
      let shown = Math.ceil(left);
      if (current.delay_s != null) shown = Math.min(shown, Math.ceil(current.delay_s));
      $("countdown-s").textContent = String(Math.max(1, shown));
    }
    if (current.changed_ts) $("changed").textContent = `since ${fmtTime(current.changed_ts)} by ${current.changed_by}`;
    $("arm-form").hidden = state !== "disarmed";
    $("disarm-form").hidden = state === "disarmed";
    $("snooze-form").hidden = state === "disarmed";
    $("unsnooze").hidden = !current.snoozed;
    const sl = $("snooze-line");
    sl.hidden = !current.snoozed;
    sl.textContent = current.snooze_until_disarmed ? "alerts snoozed until disarmed"
      : `alerts snoozed until ${fmtTime(current.snooze_until)}`;
  }

  function renderHealth(st) {
    const cam = st.camera;
    const el = $("cam-state");
    el.className = cam.ok ? "ok" : "bad";
    el.textContent = !cam.capture_running ? "capture not running" : cam.covered ? "camera covered"
      : cam.ok ? "OK" : cam.lost_since ? `camera lost since ${fmtTime(cam.lost_since)}`
      : (cam.error || "not running");
    captureRunning = cam.capture_running;
    $("capture-warning").hidden = captureRunning;
    if (!captureRunning) $("live-msg").textContent = "Capture not running: no live view.";
    const ns = st.next_schedule;
    $("schedule-line").hidden = !ns;
    if (ns) $("schedule-line").textContent = `next: ${ns.action} at ${fmtTime(ns.ts)}`;
    $("cam-fps").textContent = `${cam.fps} fps` + (cam.frames_lost ? `, ${cam.frames_lost} frames lost` : "");
    $("cam-last").textContent = fmtTime(cam.last_frame_ts);
    const db = st.database || {};
    $("db-state").className = db.ok === false ? "bad" : db.ok ? "ok" : "";
    $("db-state").textContent = db.ok === false ? `database not writable since ${fmtTime(db.unwritable_since)} (${db.waiting} event records waiting)` : db.ok ? "OK" : "unknown";
    const d = st.disk;
    $("disk").textContent = d.used_pct == null ? "unknown"
      : `${d.used_pct} % used, ${(d.free_bytes / 1e9).toFixed(1)} GB free`;
    const mq = st.mqtt, mqEl = $("mqtt-state");
    if (mq && mqEl) {
      mqEl.className = mq.connected ? "ok" : "bad";
      mqEl.textContent = "MQTT: " + (mq.connected ? "connected"
        : mq.since ? `disconnected since ${fmtTime(mq.since)}` : "not connected")
        + (!mq.connected && mq.error ? ` (${mq.error})` : "");
    }
  }

  function renderEvents(events) {
    const ul = $("events");
    ul.replaceChildren();
    if (!events.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No events yet.";
      ul.append(li);
      return;
    }
    for (const ev of events) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.className = "event-link";
      a.href = `/events/${ev.id}`;
      if (ev.thumb_url) {
        const img = document.createElement("img");
        img.src = `${ev.thumb_url}?v=${ev.end_ts || "open"}`;
        img.alt = "";
        a.append(img);
      } else {
        const s = document.createElement("span");
        s.className = "nothumb";
        a.append(s);
      }
      const t = document.createElement("span");
      t.className = "ev-time";
      const tm = document.createElement("time");
      tm.dataset.ts = String(ev.start_ts);
      tm.textContent = fmtTime(ev.start_ts);
      t.append(tm);
      const m = document.createElement("span");
      m.className = "ev-meta";
      const dur = ev.in_progress ? "now" : ev.duration_s != null ? `${Math.round(ev.duration_s)} s` : "";
      m.textContent = `${dur} · ${ev.objects} object${ev.objects === 1 ? "" : "s"}` +
        (ev.armed ? " · alerted" : "");
      if (ev.has_clip || ev.media_deleted) {
        const b = document.createElement("span");
        b.className = ev.has_clip ? "badge clip-badge" : "badge gone";
        b.textContent = ev.has_clip ? "clip" : "media deleted";
        m.append(" · ", b);
      }
      a.append(t, m);
      li.append(a);
      ul.append(li);
    }
    relativeTimes();
  }

  async function api(method, path, body) {
    const opts = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(`/api/v1${path}`, opts);
    if (r.status === 401) { window.location.href = "/login?next=/"; throw new Error("login"); }
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }

  function showError(msg) {
    const e = $("action-error");
    e.textContent = msg || "";
    e.hidden = !msg;
  }

  async function refreshEvents() {
    try {
      const data = await api("GET", "/events?limit=12");
      renderEvents(data.events);
    } catch (err) { /* the next poll tries again */ }
  }

  let offline = false;
  async function poll() {
    const seq = armSeq;
    try {
      const st = await api("GET", "/status");
      if (offline && !document.hidden) startLive(); // the server is back: its streams ended
      offline = false;
      if (seq === armSeq) setArm(st.arm); // else an arm/disarm answered meanwhile: it is newer
      renderHealth(st);
      const le = st.last_event;
      const key = le ? `${le.id}:${le.end_ts}` : "none";
      if (key !== topEvent) { topEvent = key; refreshEvents(); }
    } catch (err) { offline = true; /* for a moment: keep the last view */ }
  }

  $("arm-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const raw = $("delay").value.trim();
    const body = raw === "" ? {} : { delay_s: Number(raw) };
    const btn = $("arm-button");
    btn.disabled = true;
    armSeq++;
    try { const arm = await api("POST", "/arm", body); armSeq++; setArm(arm); showError(arm.warning ? `Armed, but ${arm.warning}` : ""); }
    catch (err) { showError(`Could not arm: ${err.message}`); }
    finally { btn.disabled = false; }
  });

  $("disarm-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = $("disarm-button");
    btn.disabled = true;
    armSeq++;
    try { const arm = await api("POST", "/disarm"); armSeq++; setArm(arm); showError(""); }
    catch (err) { showError(`Could not disarm: ${err.message}`); }
    finally { btn.disabled = false; }
  });

  // Live view: an MJPEG <img> while the page is visible, nothing while hidden. The server ends a
  // stream after web.live_max_s (data-max-s), and a browser fires no event when a multipart image
  // simply ends: the last frame would stay on screen as if live. So the page starts a new stream
  // when that time is up, and after the server was unreachable (a restart also ends streams).
  const live = $("live");
  const liveMsg = $("live-msg");
  const liveMaxS = parseFloat(live.dataset.maxS) || 0;
  let retry = null;
  let renew = null;
  function startLive() {
    clearTimeout(retry);
    clearTimeout(renew);
    live.src = `${live.dataset.src}?t=${Date.now()}`;
    liveMsg.textContent = "Live view";
    if (liveMaxS > 0) renew = setTimeout(startLive, liveMaxS * 1000);
  }
  function stopLive() {
    clearTimeout(retry);
    clearTimeout(renew);
    live.removeAttribute("src");
    liveMsg.textContent = "Live view paused.";
  }
  live.addEventListener("error", () => {
    if (document.hidden || !live.getAttribute("src")) return;
    liveMsg.textContent = captureRunning ? "No live view. Retrying..."
      : "Capture not running: no live view. Retrying...";
    retry = setTimeout(startLive, 5000);
  });
  document.addEventListener("visibilitychange", () => (document.hidden ? stopLive() : startLive()));

  window.addEventListener("load", () => { if (!document.hidden) startLive(); });
  setInterval(drawArm, 250);
  setInterval(poll, 2000);
  poll();
})();
