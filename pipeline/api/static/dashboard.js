// The dashboard: polls api/dashboard every 2 s and renders it. Data is only ever
// written with textContent (never as HTML): job ids and reasons come from users.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "pipeline-api-token";
let scope = "read";
let timer = null;

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
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    throw new Error(response.status + ": " + detail);
  }
  return data;
}

function askForToken() {
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  setStatus("enter an API token", true);
}

function setStatus(text, bad) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = bad ? "bad" : "muted";
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined || value === "" ? "-" : String(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(row, label, name, onClick) {
  const td = document.createElement("td");
  if (scope === "admin") {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "action";
    b.textContent = label;
    b.name = name;
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await onClick(); setStatus(label + " done"); }
      catch (error) { setStatus(String(error.message || error), true); }
      refresh();
    });
    td.appendChild(b);
  }
  row.appendChild(td);
}

function fill(id, rows, render, columns) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (!rows.length) {
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

function seconds(value) {
  if (value === null || value === undefined) return "-";
  if (value < 60) return value.toFixed(1) + " s";
  if (value < 3600) return (value / 60).toFixed(1) + " min";
  return (value / 3600).toFixed(1) + " h";
}

const cancel = (id) => call("POST", "api/jobs/" + encodeURIComponent(id) + "/cancel", {});
const requeue = (id) => call("POST", "api/dead-letters/requeue", { ids: [id] });

function render(data) {
  scope = data.scope;
  const now = data.generated_at;
  fill("depth", data.levels, (tr, level) => {
    cell(tr, level); cell(tr, data.depth[level] || 0); cell(tr, data.parked_counts[level] || 0);
  }, 3);
  fill("workers", data.workers, (tr, w) => {
    cell(tr, w.hostname, "id"); cell(tr, w.up ? "yes" : "no", w.up ? "" : "bad");
    cell(tr, w.active); cell(tr, w.load_score === null ? "-" : w.load_score.toFixed(2));
    cell(tr, w.level, w.level ? "level-" + w.level : "");
  }, 5);
  fill("running", data.running, (tr, r) => {
    tr.dataset.job = r.job_id;
    cell(tr, r.job_id, "id"); cell(tr, r.state); cell(tr, r.resources.join(", "));
    cell(tr, r.host ? r.host + (r.pid ? " pid " + r.pid : "") : "-");
    cell(tr, seconds(now - r.since));
    button(tr, "Cancel", "cancel", () => call("POST", "api/jobs/" +
      encodeURIComponent(r.job_id) + "/cancel", { terminate: true }));
  }, 6);
  document.getElementById("parked-total").textContent =
    "(" + Object.values(data.parked_counts).reduce((a, b) => a + b, 0) + ")";
  fill("parked", data.parked, (tr, p) => {
    tr.dataset.job = p.job_id;
    cell(tr, p.job_id, "id"); cell(tr, p.priority); cell(tr, p.position); cell(tr, p.reason);
    cell(tr, p.parked_at ? seconds(now - p.parked_at) : "-");
    button(tr, "Cancel", "cancel", () => cancel(p.job_id));
  }, 6);
  fill("locks", data.locks, (tr, l) => {
    cell(tr, l.resource); cell(tr, l.mode); cell(tr, l.holder, "id"); cell(tr, l.job_id, "id");
    cell(tr, l.lease_expired ? "expired" : seconds(l.expires - now), l.lease_expired ? "bad" : "");
  }, 5);
  fill("failures", data.failures, (tr, f) => {
    cell(tr, f.id, "id"); cell(tr, f.task); cell(tr, f.state, "bad");
    cell(tr, f.finished_at); cell(tr, f.error);
  }, 5);
  fill("dead", data.dead_letters, (tr, d) => {
    tr.dataset.job = d.job_id;
    cell(tr, d.job_id, "id"); cell(tr, d.task); cell(tr, d.user); cell(tr, d.attempts);
    cell(tr, d.error);
    button(tr, "Requeue", "requeue", () => requeue(d.job_id));
  }, 6);
}

async function refresh() {
  clearTimeout(timer);
  try {
    const data = await call("GET", "api/dashboard");
    render(data);
    document.getElementById("login").hidden = true;
    document.getElementById("logout").hidden = !token();
    setStatus("updated " + new Date(data.generated_at * 1000).toLocaleTimeString() +
              " · scope " + data.scope + (data.notes.length ? " · " + data.notes.join("; ") : ""));
  } catch (error) {
    if (!document.getElementById("login").hidden) return;  // waiting for a token
    setStatus(String(error.message || error), true);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  document.getElementById("login").hidden = true;
  refresh();
});
document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  askForToken();
});
refresh();
