// The dashboard: polls api/dashboard every 2 s and renders it; the queued list, the
// charts, the statistics and the audit log come from their own endpoints. Data is only
// ever written with textContent (never as HTML): job ids and reasons come from users.
// Every time on the page is shown one way (local YYYY-MM-DD HH:MM:SS, UTC ISO in the
// tooltip); every destructive action asks first, in a dialog naming what it will do.
"use strict";

const REFRESH_MS = 2000;
const SLOW_REFRESH_MS = 15000;
const QUEUED_PAGE = 10;
const AUDIT_PAGE = 15;
const TOKEN_KEY = "pipeline-api-token";
const LEVEL_COLOURS = { critical: "#b91c1c", high: "#d97706", normal: "#2563eb",
                        low: "#6b7280", unknown: "#a855f7" };
const SVG = "http://www.w3.org/2000/svg";

let scope = "read";
let timer = null;
let slowTimer = null;
let latest = null;  // the last api/dashboard answer
const queuedView = { level: "normal", offset: 0, chosen: false };
const auditView = { offset: 0 };

// ---------------------------------------------------------------- API calls

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) { askForToken(); throw new Error("a token is needed"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail
      : Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ")
      : JSON.stringify(data.detail);
    const error = new Error(response.status + ": " + detail);
    error.status = response.status;
    throw error;
  }
  return data;
}

const jobPath = (id) => "api/jobs/" + encodeURIComponent(id);

function askForToken() {
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  setStatus("enter an API token", true);
}

// An action's outcome stays a few seconds before "updated ..." overwrites it.
let quietUntil = 0;

function setStatus(text, bad, routine) {
  if (!routine) quietUntil = Date.now() + 4000;
  else if (Date.now() < quietUntil) return;
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = bad ? "bad" : "muted";
}

// ---------------------------------------------------------------- times

const pad = (n) => String(n).padStart(2, "0");

// A time given as seconds since the epoch or as ISO 8601 text, as a Date (or null).
function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return isNaN(date.getTime()) ? null : date;
}

// The one way the page shows a time: local YYYY-MM-DD HH:MM:SS.
function clock(date) {
  return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
    " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "-";
  const s = Math.max(0, seconds);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  if (s < 86400) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

function nowSeconds() { return latest ? latest.generated_at : Date.now() / 1000; }

// A table cell holding a time, with its age when *age* is set; the tooltip has UTC ISO.
function timeCell(row, value, age) {
  const td = document.createElement("td");
  const date = toDate(value);
  if (date === null) {
    td.textContent = "-";
  } else {
    const span = document.createElement("time");
    span.className = "time";
    span.dateTime = date.toISOString();
    span.title = date.toISOString();
    span.textContent = clock(date);
    td.appendChild(span);
    if (age) {
      const ago = document.createElement("span");
      ago.className = "age muted";
      ago.textContent = " (" + duration(nowSeconds() - date.getTime() / 1000) + " ago)";
      td.appendChild(ago);
    }
  }
  row.appendChild(td);
  return td;
}

// ---------------------------------------------------------------- tables

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined || value === "" ? "-" : String(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function jobLink(parent, id, label) {
  const a = document.createElement("a");
  a.className = "job-link mono";
  a.href = "#job=" + encodeURIComponent(id);
  a.textContent = label || id;
  a.title = id;
  parent.appendChild(a);
  return a;
}

function idCell(row, id) {
  const td = document.createElement("td");
  td.className = "id";
  if (id) jobLink(td, id); else td.textContent = "-";
  row.appendChild(td);
  return td;
}

function shortId(id) { return id && id.length > 12 ? id.slice(0, 8) + "…" : id; }

function resourcesOf(item) {
  return (item.resources || item.needs || []).filter((r) => r !== "global").join(", ");
}

// An action button (admin only) that runs *act* once *describe()* has been confirmed.
function actionButton(parent, label, name, describe, act) {
  if (scope !== "admin") return null;
  const b = document.createElement("button");
  b.type = "button";
  b.className = "action";
  b.textContent = label;
  b.name = name;
  b.addEventListener("click", async (event) => {
    event.stopPropagation();
    const question = await describe();
    if (!question || !(await confirmAction(question.text, question.yes))) {
      setStatus(label + ": nothing done");
      return;
    }
    b.disabled = true;
    try { await act(); setStatus(question.yes + ": done"); }
    catch (error) { setStatus(String(error.message || error), true); }
    refresh();
  });
  parent.appendChild(b);
  return b;
}

function actionCell(row, label, name, describe, act) {
  const td = document.createElement("td");
  actionButton(td, label, name, describe, act);
  row.appendChild(td);
}

function fill(id, rows, render, columns) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (!rows || !rows.length) {
    const tr = body.insertRow();
    const td = cell(tr, "none", "empty");
    td.colSpan = columns;
    return;
  }
  for (const item of rows) {
    const tr = body.insertRow();
    render(tr, item);
  }
}

// ---------------------------------------------------------------- confirmation

// Ask in the dialog; resolves true only when the operator chose the action.
function confirmAction(text, yes) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yes;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

function taskOf(item) { return item.task || "unknown task"; }

const cancelRunning = (r) => ({
  yes: "Cancel job",
  text: "Cancel job " + shortId(r.job_id) + " (task " + taskOf(r) + ", " +
    (r.host ? "running on worker " + r.host + (r.pid ? " (pid " + r.pid + ")" : "")
      : r.state + ", holding " + (resourcesOf(r) || "its locks")) +
    ")? It will be killed.",
});
const cancelParked = (p) => ({
  yes: "Cancel job",
  text: "Cancel job " + shortId(p.job_id) + " (task " + taskOf(p) + ", parked at priority " +
    (p.priority || "-") + ", waiting for " + p.waiting_for + ")? It will not run.",
});
const cancelQueued = (q) => ({
  yes: "Cancel job",
  text: "Cancel job " + shortId(q.id) + " (task " + taskOf(q) + ", queued at priority " +
    queuedView.level + ", place " + q.place + ")? It will not run.",
});
const requeueDead = (d) => ({
  yes: "Requeue",
  text: "Requeue dead letter " + shortId(d.job_id) + " (task " + taskOf(d) + ", dead after " +
    d.attempts + " attempt(s))? It will run again with fresh attempts.",
});
const purgeDead = (d) => ({
  yes: "Purge",
  text: "Purge dead letter " + shortId(d.job_id) + " (task " + taskOf(d) +
    ")? It is deleted for good and cannot be requeued; the job store keeps its record.",
});
const releaseLock = (l) => ({
  yes: "Release lock",
  text: "Release lock " + l.resource + " (held by " +
    l.holders.map((h) => "job " + shortId(h.job_id)).join(", ") +
    ")? Its holders lose it at once and the next parked job gets it; a job still running " +
    "keeps running without it.",
});

async function describeFlush(level) {
  const plan = await call("POST", "api/admin/clear",
    { priority: level, state: "all", dry_run: true });
  if (!plan.count) {
    setStatus("nothing waiting at priority " + level + " to flush");
    return null;
  }
  return { yes: "Flush " + plan.count + " job(s)",
    text: "Flush priority " + level + ": cancel " + plan.count +
      " waiting job(s) (queued and parked)? They will be recorded CANCELLED and never run." };
}

// ---------------------------------------------------------------- overview

function renderRunning(data) {
  fill("running", data.running, (tr, r) => {
    tr.dataset.job = r.job_id;
    idCell(tr, r.job_id); cell(tr, r.task); cell(tr, r.user); cell(tr, r.project);
    cell(tr, r.priority); cell(tr, resourcesOf(r)); cell(tr, r.state);
    cell(tr, r.host ? r.host + (r.pid ? " pid " + r.pid : "") : "-");
    timeCell(tr, r.since, true);
    actionCell(tr, "Cancel", "cancel", () => cancelRunning(r),
      () => call("POST", jobPath(r.job_id) + "/cancel", { terminate: true }));
  }, 10);
}

function renderParked(data) {
  document.getElementById("parked-total").textContent =
    "(" + Object.values(data.parked_counts).reduce((a, b) => a + b, 0) + ")";
  fill("parked", data.parked, (tr, p) => {
    tr.dataset.job = p.job_id;
    idCell(tr, p.job_id); cell(tr, p.task); cell(tr, p.user); cell(tr, p.project);
    cell(tr, p.priority); cell(tr, resourcesOf(p)); cell(tr, p.position); cell(tr, p.reason);
    timeCell(tr, p.parked_at, true);
    actionCell(tr, "Cancel", "cancel", () => cancelParked(p),
      () => call("POST", jobPath(p.job_id) + "/cancel", {}));
  }, 10);
}

function lockMode(l) {
  if (l.mode === "shared") return "shared (" + l.holders.length + " reader(s))";
  if (l.capacity > 1) return l.holders.length + " of " + l.capacity;
  return "exclusive";
}

function renderLocks(data) {
  const slots = data.global_slots || { held: 0, capacity: 0 };
  document.getElementById("global-slots").textContent = "global slots " + slots.held + " of " +
    (slots.capacity ? slots.capacity : "unlimited");
  fill("locks", data.locks, (tr, l) => {
    cell(tr, l.resource); cell(tr, lockMode(l));
    const holders = document.createElement("td");
    holders.className = "id";
    l.holders.forEach((h, i) => {
      if (i) holders.appendChild(document.createTextNode(", "));
      jobLink(holders, h.job_id);
      if (h.holder !== h.job_id) {
        holders.appendChild(document.createTextNode(" (workflow " + shortId(h.holder) + ")"));
      }
    });
    tr.appendChild(holders);
    cell(tr, l.lease_expired ? "expired" : duration(l.expires - data.generated_at),
      l.lease_expired ? "bad" : "");
    actionCell(tr, "Release", "release", () => releaseLock(l),
      () => call("POST", "api/locks/release",
        { resource: l.resource, reason: "released from the dashboard" }));
  }, 5);
}

function render(data) {
  latest = data;
  scope = data.scope;
  fill("depth", data.levels, (tr, level) => {
    cell(tr, level); cell(tr, data.depth[level] || 0); cell(tr, data.parked_counts[level] || 0);
  }, 3);
  fill("workers", data.workers, (tr, w) => {
    cell(tr, w.hostname, "id"); cell(tr, w.up ? "yes" : "no", w.up ? "" : "bad");
    cell(tr, w.active);
    cell(tr, w.load_score === null || w.load_score === undefined ? "-" : w.load_score.toFixed(2));
    cell(tr, w.level, w.level ? "level-" + w.level : "");
  }, 5);
  renderRunning(data);
  renderParked(data);
  renderLocks(data);
  fill("failures", data.failures, (tr, f) => {
    tr.dataset.job = f.id;
    idCell(tr, f.id); cell(tr, f.task); cell(tr, f.user); cell(tr, f.state, "bad");
    timeCell(tr, f.finished_at, true); cell(tr, f.error);
  }, 6);
  fill("dead", data.dead_letters, (tr, d) => {
    tr.dataset.job = d.job_id;
    idCell(tr, d.job_id); cell(tr, d.task); cell(tr, d.user); cell(tr, d.attempts);
    cell(tr, d.error);
    const td = document.createElement("td");
    actionButton(td, "Requeue", "requeue", () => requeueDead(d),
      () => call("POST", "api/dead-letters/requeue", { ids: [d.job_id] }));
    actionButton(td, "Purge", "purge", () => purgeDead(d),
      () => call("POST", "api/dead-letters/purge", { ids: [d.job_id] }));
    tr.appendChild(td);
  }, 6);
}

// ---------------------------------------------------------------- queued list

function renderLevels(data) {
  const select = document.getElementById("queued-level");
  if (!queuedView.chosen) {  // until the operator picks one: the busiest level
    const busiest = data.levels.reduce((a, b) => ((data.depth[b] || 0) > (data.depth[a] || 0)
      ? b : a), queuedView.level);
    if ((data.depth[busiest] || 0) > (data.depth[queuedView.level] || 0)) {
      queuedView.level = busiest;
      queuedView.offset = 0;
    }
  }
  select.replaceChildren(...data.levels.map((level) => {
    const option = document.createElement("option");
    option.value = level;
    option.textContent = level + " (" + (data.depth[level] || 0) + ")";
    option.selected = level === queuedView.level;
    return option;
  }));
}

async function refreshQueued() {
  const page = await call("GET", "api/queued?priority=" + queuedView.level + "&limit=" +
    QUEUED_PAGE + "&offset=" + queuedView.offset);
  if (page.total && queuedView.offset >= page.total) {  // the list shrank under this page
    queuedView.offset = Math.floor((page.total - 1) / QUEUED_PAGE) * QUEUED_PAGE;
    return refreshQueued();
  }
  const last = Math.min(page.total, page.offset + page.jobs.length);
  document.getElementById("queued-range").textContent = page.total
    ? (page.offset + 1) + " to " + last + " of " + page.total : "none waiting";
  document.getElementById("queued-prev").disabled = page.offset === 0;
  document.getElementById("queued-next").disabled = last >= page.total;
  fill("queued", page.jobs, (tr, q) => {
    tr.dataset.job = q.id;
    cell(tr, q.place); idCell(tr, q.id); cell(tr, q.task); cell(tr, q.user);
    cell(tr, q.project); cell(tr, page.priority);
    cell(tr, [...q.models, ...q.shared_models.map((m) => m + " (read)")].join(", "));
    timeCell(tr, q.submitted_at, true);
    actionCell(tr, "Cancel", "cancel", () => cancelQueued(q),
      () => call("POST", jobPath(q.id) + "/cancel", {}));
  }, 9);
  const slot = document.getElementById("flush-slot");
  slot.replaceChildren();
  const level = queuedView.level;
  actionButton(slot, "Flush " + level, "flush", () => describeFlush(level),
    () => call("POST", "api/admin/clear", { priority: level, state: "all", confirm: true }));
}

// ---------------------------------------------------------------- charts (SVG)

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

function hhmm(date) { return pad(date.getHours()) + ":" + pad(date.getMinutes()); }

// A line chart of *series* ({name, colour, values}) over *minutes* (Date objects).
function lineChart(figureId, minutes, series, unit) {
  const svg = document.querySelector("#" + figureId + " svg");
  const width = 360, height = 150, left = 40, right = 8, top = 8, bottom = 36;
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.replaceChildren();
  const values = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(1, ...values);
  const x = (i) => left + (minutes.length < 2 ? 0 : i * (width - left - right) / (minutes.length - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  svgElement("line", { x1: left, x2: width - right, y1: y(0), y2: y(0), class: "axis" }, svg);
  svgElement("line", { x1: left, x2: left, y1: top, y2: y(0), class: "axis" }, svg);
  const label = (text, attributes) => { svgElement("text", attributes, svg).textContent = text; };
  label(unit === "s" ? duration(max) : String(Math.round(max * 10) / 10),
    { x: left - 4, y: top + 8, "text-anchor": "end", class: "tick" });
  label("0", { x: left - 4, y: y(0), "text-anchor": "end", class: "tick" });
  if (minutes.length) {
    label(hhmm(minutes[0]), { x: left, y: y(0) + 12, class: "tick" });
    label(hhmm(minutes[minutes.length - 1]),
      { x: width - right, y: y(0) + 12, "text-anchor": "end", class: "tick" });
  }
  let points = 0;
  series.forEach((s, index) => {
    let run = [];
    const flush = () => {
      if (run.length === 1) {
        svgElement("circle", { cx: run[0][0], cy: run[0][1], r: 2, fill: s.colour }, svg);
      } else if (run.length > 1) {
        svgElement("polyline", { points: run.map((p) => p.join(",")).join(" "),
          fill: "none", stroke: s.colour, "stroke-width": 1.5, class: "series" }, svg);
      }
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null) { flush(); return; }
      if (v > 0) points += 1;
      run.push([x(i).toFixed(1), y(v).toFixed(1)]);
    });
    flush();
    const key = svgElement("text", { x: left + 4 + index * 80, y: height - 4,
      fill: s.colour, class: "legend" }, svg);
    key.textContent = "■ " + s.name;
  });
  svg.dataset.points = String(points);
  const last = series.map((s) => s.name + " " + (s.values.length ? s.values[s.values.length - 1]
    : "-")).join(", ");
  svg.setAttribute("aria-label", "last minute: " + last);
}

function renderHistory(history) {
  const minutes = history.minutes.map((m) => new Date(m));
  lineChart("chart-depth", minutes, Object.entries(history.depth).map(([level, values]) =>
    ({ name: level, colour: LEVEL_COLOURS[level] || "#000", values })), "jobs");
  lineChart("chart-throughput", minutes,
    [{ name: "finished", colour: "#15803d", values: history.finished }], "jobs");
  lineChart("chart-wait", minutes, [
    { name: "wait p95", colour: "#2563eb", values: history.wait_p95 },
    { name: "lock wait p95", colour: "#d97706", values: history.lock_wait_p95 }], "s");
  lineChart("chart-failures", minutes,
    [{ name: "failed", colour: "#b91c1c", values: history.failed }], "jobs");
}

// ---------------------------------------------------------------- statistics, audit

const percent = (v) => (v === null || v === undefined ? "-" : (v * 100).toFixed(1) + " %");

function renderStats(stats) {
  const since = toDate(stats.since), until = toDate(stats.until);
  document.getElementById("stats-window").textContent =
    "(" + clock(since) + " to " + clock(until) + ")";
  const rows = [
    ["jobs finished", stats.finished],
    ["completion rate", percent(stats.completion_rate)],
    ["failure rate", percent(stats.failure_rate)],
    ["completed per minute", stats.completed_per_minute.toFixed(2)],
    ["wait (queued → started) average / p95",
      duration(stats.wait.average) + " / " + duration(stats.wait.p95)],
    ["execution average / p95",
      duration(stats.execution.average) + " / " + duration(stats.execution.p95)],
    ["lock wait (parked → started) average / p95",
      duration(stats.lock_wait.average) + " / " + duration(stats.lock_wait.p95)],
    ...Object.entries(stats.by_state).map(([state, n]) => ["finished " + state, n]),
  ];
  fill("stats", rows, (tr, [name, value]) => { cell(tr, name); cell(tr, value); }, 2);
  fill("contention", stats.contention, (tr, c) => {
    cell(tr, c.resource); cell(tr, c.blocked); cell(tr, c.jobs); cell(tr, duration(c.average_wait));
  }, 4);
}

// An event's details as "key=value" pairs; times (keys ending in _at) in the page's format.
function detailText(detail) {
  return Object.entries(detail || {}).filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => {
      const date = k.endsWith("_at") ? toDate(v) : null;
      return k + "=" + (date ? clock(date) : typeof v === "object" ? JSON.stringify(v) : v);
    }).join(" ");
}

async function refreshAudit() {
  const only = document.getElementById("audit-operator").checked ? "&event=operator" : "";
  const page = await call("GET", "api/audit?limit=" + AUDIT_PAGE + "&offset=" +
    auditView.offset + only);
  const last = page.offset + page.events.length;
  document.getElementById("audit-range").textContent = page.total
    ? (page.offset + 1) + " to " + last + " of " + page.total : "no events";
  document.getElementById("audit-prev").disabled = page.offset === 0;
  document.getElementById("audit-next").disabled = last >= page.total;
  fill("audit", page.events, (tr, e) => {
    if (e.job_id) tr.dataset.job = e.job_id;
    timeCell(tr, e.at, true); cell(tr, e.event, e.event === "operator" ? "strong" : "");
    idCell(tr, e.job_id); cell(tr, e.task); cell(tr, detailText(e.detail));
  }, 5);
}

async function refreshSlow() {
  clearTimeout(slowTimer);
  const parts = [
    call("GET", "api/history?minutes=60").then(renderHistory),
    call("GET", "api/stats").then(renderStats),
    refreshAudit(),
  ];
  for (const result of await Promise.allSettled(parts)) {
    if (result.status === "rejected" && result.reason.status === 503) {
      setStatus("job store: " + result.reason.message, true);
    }
  }
  slowTimer = setTimeout(refreshSlow, SLOW_REFRESH_MS);
}

// ---------------------------------------------------------------- job page

// A JSON value as the job schema gives it (args, kwargs, result), shown as JSON text.
function jsonText(value) {
  return value === null || value === undefined || typeof value === "string" ? value
    : JSON.stringify(value);
}

function field(body, name, value, render) {
  const tr = body.insertRow();
  const th = document.createElement("th");
  th.textContent = name;
  tr.appendChild(th);
  if (render) render(tr, value); else cell(tr, Array.isArray(value) ? value.join(", ") : value);
}

// The job's resources: held (with every holder), the one it waits for (with who is in
// the way), or needed.
function jobLocks(view) {
  const holding = ["running", "granted", "between", "stopped"].includes(view.where);
  const left = view.expires ? duration(view.expires - nowSeconds()) : "-";
  return (view.resources || []).map((resource) => {
    const lock = (latest ? latest.locks : []).find((l) => l.resource === resource);
    if (holding) {
      return { resource, left, state: lock ? lockMode(lock)
        : resource === "global" ? "one global slot" : "held",
      holders: lock ? lock.holders : [{ job_id: view.id }] };
    }
    if (resource === view.waiting_for) {
      return { resource, left: "-", state: "waiting for it",
        holders: view.blocked_by ? [{ job_id: view.blocked_by }] : [] };
    }
    return { resource, left: "-", state: view.where === "parked" ? "needed" : "-",
      holders: lock ? lock.holders : [] };
  });
}

function renderJob(view) {
  // One shape for a job (docs/reference/job-schema.md): its fields sit beside the live ones.
  const job = view.job || view;
  document.getElementById("job-id").textContent = view.id;
  const state = document.getElementById("job-state");
  state.textContent = view.state + (view.where && view.where !== "finished" ? " · " +
    view.where : "");
  document.getElementById("job-why").textContent = view.why_not_running
    ? "Why it is not running: " + view.why_not_running : "It is running.";
  const body = document.querySelector("#job-fields tbody");
  body.replaceChildren();
  field(body, "task", job.task);
  field(body, "user", job.user);
  field(body, "project", job.project);
  field(body, "priority", view.priority || job.priority_name || job.priority);
  field(body, "models", job.models);
  field(body, "resources", view.resources);
  field(body, "attempts", job.attempts);
  field(body, "arguments", jsonText(job.args));
  field(body, "keyword arguments", jsonText(job.kwargs));
  for (const name of ["queued_at", "blocked_at", "started_at", "finished_at"]) {
    field(body, name.replace("_at", ""), job[name], (tr, v) => timeCell(tr, v, true));
  }
  field(body, "runtime", job.runtime === null || job.runtime === undefined ? null
    : duration(job.runtime));
  field(body, "worker", view.host || job.worker_host ? (view.host || job.worker_host) +
    (view.pid || job.worker_pid ? " pid " + (view.pid || job.worker_pid) : "") : null);
  field(body, "workflow", job.workflow_id);
  field(body, "result", jsonText(job.result));
  field(body, "error", job.error);
  fill("job-locks", jobLocks(view), (tr, l) => {
    cell(tr, l.resource); cell(tr, l.state);
    const td = document.createElement("td");
    td.className = "id";
    l.holders.forEach((h, i) => {
      if (i) td.appendChild(document.createTextNode(", "));
      jobLink(td, h.job_id);
    });
    if (!l.holders.length) td.textContent = "-";
    tr.appendChild(td);
    cell(tr, l.left);
  }, 4);
  fill("job-history", [...view.history].reverse(), (tr, e) => {
    timeCell(tr, e.at, true); cell(tr, e.event); cell(tr, detailText(e.detail));
  }, 3);
  const action = document.getElementById("job-action");
  action.replaceChildren();
  const running = ["running", "granted", "between"].includes(view.where);
  if (running || ["parked", "queued", "delayed"].includes(view.where)) {
    const row = { job_id: view.id, id: view.id, task: job.task, host: view.host, pid: view.pid,
      state: view.where, resources: view.resources, priority: view.priority,
      waiting_for: view.waiting_for, place: view.place };
    const describe = running ? () => cancelRunning(row) : view.where === "parked"
      ? () => cancelParked(row) : () => ({ yes: "Cancel job", text: "Cancel job " +
        shortId(view.id) + " (task " + taskOf(row) + ", " + view.where + " at priority " +
        (view.priority || "-") + ")? It will not run." });
    actionButton(action, "Cancel", "cancel", describe,
      () => call("POST", jobPath(view.id) + "/cancel", { terminate: running }));
  }
}

function openedJob() {
  const match = /^#job=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function refreshJob() {
  const id = openedJob();
  if (id === null) return;
  try {
    renderJob(await call("GET", jobPath(id) + "?history=100"));
  } catch (error) {
    if (error.status !== 404) throw error;
    document.getElementById("job-id").textContent = id;
    document.getElementById("job-state").textContent = "unknown";
    document.getElementById("job-why").textContent = "No job " + id + " is known.";
  }
}

function route() {
  const id = openedJob();
  document.getElementById("overview").hidden = id !== null;
  document.getElementById("job-page").hidden = id === null;
  document.getElementById("search-results").hidden = true;
  if (id !== null) {
    document.title = "job " + shortId(id) + " · pipeline";
    document.querySelector("#job-fields tbody").replaceChildren();
    document.querySelector("#job-history tbody").replaceChildren();
    refreshJob().catch((error) => setStatus(String(error.message || error), true));
  } else {
    document.title = "pipeline";
  }
}

function openJob(id) { location.hash = "job=" + encodeURIComponent(id); }

async function search(text) {
  const box = document.getElementById("search-results");
  const message = document.getElementById("search-message");
  const list = document.getElementById("search-matches");
  list.replaceChildren();
  const found = await call("GET", "api/job-ids?prefix=" + encodeURIComponent(text));
  if (found.ids.includes(text) || found.ids.length === 1) {
    openJob(found.ids.includes(text) ? text : found.ids[0]);
    return;
  }
  if (!found.ids.length) {  // not recorded yet: the job endpoint looks everywhere
    try { await call("GET", jobPath(text) + "?history=0"); openJob(text); return; }
    catch (error) { if (error.status !== 404) throw error; }
    message.textContent = "No job id starts with " + text + ".";
  } else {
    message.textContent = found.ids.length + (found.more ? "+" : "") + " jobs start with " +
      text + ": pick one.";
    for (const id of found.ids) {
      const item = document.createElement("li");
      jobLink(item, id);
      list.appendChild(item);
    }
  }
  box.hidden = false;
}

// ---------------------------------------------------------------- polling and wiring

async function refresh() {
  clearTimeout(timer);
  try {
    const data = await call("GET", "api/dashboard");
    render(data);
    renderLevels(data);
    await refreshQueued();
    if (openedJob() !== null) await refreshJob();
    document.getElementById("login").hidden = true;
    document.getElementById("logout").hidden = !token();
    setStatus("updated " + clock(new Date(data.generated_at * 1000)) + " · scope " +
      data.scope + (data.notes.length ? " · " + data.notes.join("; ") : ""), false, true);
  } catch (error) {
    if (!document.getElementById("login").hidden) return;  // waiting for a token
    setStatus(String(error.message || error), true);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function start() {
  refresh();
  refreshSlow();
}

document.getElementById("tz").textContent =
  Intl.DateTimeFormat().resolvedOptions().timeZone || "browser time";
document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  document.getElementById("login").hidden = true;
  start();
});
document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  askForToken();
});
document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = document.getElementById("search-input").value.trim();
  if (text) search(text).catch((error) => setStatus(String(error.message || error), true));
});
document.getElementById("queued-level").addEventListener("change", (event) => {
  queuedView.level = event.target.value;
  queuedView.offset = 0;
  queuedView.chosen = true;
  refreshQueued().catch((error) => setStatus(String(error.message || error), true));
});
for (const [id, step] of [["queued-prev", -QUEUED_PAGE], ["queued-next", QUEUED_PAGE]]) {
  document.getElementById(id).addEventListener("click", () => {
    queuedView.offset = Math.max(0, queuedView.offset + step);
    refreshQueued().catch((error) => setStatus(String(error.message || error), true));
  });
}
for (const [id, step] of [["audit-prev", -AUDIT_PAGE], ["audit-next", AUDIT_PAGE]]) {
  document.getElementById(id).addEventListener("click", () => {
    auditView.offset = Math.max(0, auditView.offset + step);
    refreshAudit().catch((error) => setStatus(String(error.message || error), true));
  });
}
document.getElementById("audit-operator").addEventListener("change", () => {
  auditView.offset = 0;
  refreshAudit().catch((error) => setStatus(String(error.message || error), true));
});
// A click anywhere on a job's row (not on a button or link) opens its page.
document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-job]");
  if (row && !event.target.closest("button, a")) openJob(row.dataset.job);
});
window.addEventListener("hashchange", route);
route();
start();
