// Warden console. Talks to the admin API (/admin/v1) with the session cookie and the CSRF token
// from the page's meta tag, and reads /metrics for the charts. No framework, no inline script;
// every value from the server reaches the page through textContent, never as HTML.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="warden-csrf"]').content;
  const POLL_MS = 2000;
  const SAMPLES = 60;
  const $ = (id) => document.getElementById(id);
  let session = null;
  let clients = [];
  let apis = [];
  let selected = null;

  // helpers -----------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function status(text, kind) {
    const box = $("status");
    box.textContent = text;
    box.className = "status " + (kind || "");
  }
  function fill(tbody, rows, empty) {
    tbody.replaceChildren(...rows);
    if (!rows.length) tbody.append(el("tr", {}, el("td", { colspan: "9" }, empty || "none")));
  }
  function when(iso) {
    if (!iso) return "never";
    const d = new Date(iso);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/:\d\dZ$/, "Z");
  }
  function ago(iso) {
    if (!iso) return "never";
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }
  function countdown(seconds) {
    if (seconds <= 0) return "ended";
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
  }
  function duration(seconds) {
    return seconds % 3600 === 0 ? seconds / 3600 + "h" : seconds % 60 === 0 ? seconds / 60 + "m" : seconds + "s";
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { "X-Warden-CSRF": csrf } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch("/admin/v1" + path, init);
    if (response.status === 401) { signedOut(); throw new Error("signed out"); }
    if (response.status === 204) return null;
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || data.error_description || data.error || "request failed");
    return data;
  }
  // list endpoints answer pages ({items, next_cursor}); the console reads up to 20 pages of 200
  async function all(path) {
    let items = [];
    let cursor = null;
    for (let page = 0; page < 20; page++) {
      const sep = path.includes("?") ? "&" : "?";
      const data = await api("GET", path + sep + "limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      if (Array.isArray(data)) return data;
      items = items.concat(data.items);
      cursor = data.next_cursor;
      if (!cursor) break;
    }
    return items;
  }
  async function act(what, fn) {
    try {
      status(what + "...");
      await fn();
      status(what + ": done.", "ok");
    } catch (e) {
      status(what + " failed: " + e.message, "error");
    }
  }

  // session and routing ----------------------------------------------------------------
  function signedOut() {
    session = null;
    $("nav").hidden = true;
    $("sign-out").hidden = true;
    $("session-info").textContent = "";
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "page-signed-out";
  }
  const loaders = { overview: () => {}, clients: loadClients, apis: loadApis, keys: loadKeys,
    revocations: loadRevocations, audit: loadAudit };
  function route(focus) {
    if (!session) return signedOut();
    const page = (location.hash || "#overview").slice(1);
    const name = page in loaders ? page : "overview";
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "page-" + name;
    for (const a of document.querySelectorAll("nav a")) {
      if (a.getAttribute("href") === "#" + name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = $("h-" + name).textContent + " - Warden console";
    if (focus) $("h-" + name).setAttribute("tabindex", "-1"), $("h-" + name).focus();
    Promise.resolve(loaders[name]()).catch((e) => status(e.message, "error"));
  }
  function tickSession() {
    if (!session) return;
    const left = session.expires_at - Date.now() / 1000;
    if (left <= 0) return signedOut();
    $("session-info").textContent = "Signed in as " + session.operator +
      (session.tenant ? " (tenant " + session.tenant + ")" : "") + (session.can_write ? "" : " (read-only)") +
      " \u00b7 session ends in " + countdown(left);
  }
  async function start() {
    const response = await fetch("/console/session", { credentials: "same-origin" });
    if (!response.ok || !csrf) return signedOut();
    session = await response.json();
    $("nav").hidden = false;
    $("sign-out").hidden = false;
    tickSession();
    route(false);
    setInterval(tickSession, 1000);
    setInterval(tickSecrets, 1000);
    poll();
    setInterval(poll, POLL_MS);
  }
  $("sign-out").addEventListener("click", async () => {
    await fetch("/console/logout", { method: "POST", credentials: "same-origin", headers: { "X-Warden-CSRF": csrf } });
    signedOut();
  });
  window.addEventListener("hashchange", () => route(true));

  // overview: charts from /metrics -------------------------------------------------------
  function parseMetrics(text) {
    const out = [];
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[3]) for (const p of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
      out.push({ name: m[1], labels, value: parseFloat(m[4]) });
    }
    return out;
  }
  function sum(samples, name, pred) {
    return samples.filter((s) => s.name === name && (!pred || pred(s.labels))).reduce((a, s) => a + s.value, 0);
  }
  function buckets(samples) {
    for (const base of ["warden_token_request_duration_seconds", "warden_token_issuance_seconds"]) {
      const rows = samples.filter((s) => s.name === base + "_bucket");
      if (!rows.length) continue;
      const byLe = {};
      for (const r of rows) byLe[r.labels.le] = (byLe[r.labels.le] || 0) + r.value;
      return byLe;
    }
    return {};
  }
  function p99(prev, cur) {
    const les = Object.keys(cur).sort((a, b) => parseFloat(a) - parseFloat(b));
    const total = (cur["+Inf"] || 0) - ((prev && prev["+Inf"]) || 0);
    if (total <= 0) return 0;
    for (const le of les) {
      const n = cur[le] - ((prev && prev[le]) || 0);
      if (n >= 0.99 * total) return le === "+Inf" ? NaN : parseFloat(le) * 1000;
    }
    return NaN;
  }
  const series = { rate: [], errors: [], p99: [], limited: [] };
  let last = null;
  async function poll() {
    if (!session) return;
    let text;
    try {
      const response = await fetch("/metrics", { credentials: "same-origin" });
      if (!response.ok) return;
      text = await response.text();
    } catch (e) { return; }
    const samples = parseMetrics(text);
    const now = {
      t: Date.now() / 1000,
      total: sum(samples, "warden_token_requests_total"),
      errors: sum(samples, "warden_token_requests_total", (l) => l.outcome !== "issued"),
      limited: sum(samples, "warden_rate_limited_total"),
      buckets: buckets(samples),
    };
    if (last) {
      const dt = Math.max(0.001, now.t - last.t);
      push("rate", Math.max(0, now.total - last.total) / dt, now.total);
      push("errors", Math.max(0, now.errors - last.errors) / dt, now.errors);
      push("p99", p99(last.buckets, now.buckets), null);
      push("limited", Math.max(0, now.limited - last.limited) / dt, now.limited);
    }
    last = now;
    const reasons = samples.filter((s) => s.name === "warden_token_requests_total" && s.labels.outcome !== "issued");
    fill($("error-reasons").tBodies[0], reasons.sort((a, b) => b.value - a.value).map((s) =>
      el("tr", {}, el("td", {}, s.labels.outcome), el("td", {}, s.labels.reason || ""), el("td", {}, s.value))),
    "no refused or failed token requests");
  }
  function push(name, value, total) {
    const data = series[name];
    data.push(Number.isFinite(value) ? value : 0);
    if (data.length > SAMPLES) data.shift();
    draw($("chart-" + name), data, value, total);
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }
  function draw(figure, data, value, total) {
    const W = 300, H = 100, max = Math.max(1e-9, ...data);
    const x = (i) => (W * i) / (SAMPLES - 1);
    const y = (v) => H - 4 - ((H - 8) * v) / max;
    const pts = data.map((v, i) => x(i + SAMPLES - data.length).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
    const first = x(SAMPLES - data.length).toFixed(1);
    const chart = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img",
      "aria-label": figure.querySelector("figcaption").textContent + ": now " + fmt(value) });
    chart.append(svg("line", { x1: 0, y1: H - 4, x2: W, y2: H - 4, class: "axis" }),
      svg("polygon", { points: first + "," + (H - 4) + " " + pts + " " + W + "," + (H - 4), class: "area" }),
      svg("polyline", { points: pts, class: "line" }));
    let now = figure.querySelector(".now");
    if (!now) figure.append((now = el("div", { class: "now" })));
    now.textContent = Number.isFinite(value) ? fmt(value) : "> largest bucket";
    const old = figure.querySelector("svg");
    if (old) old.replaceWith(chart); else figure.append(chart);
    figure.dataset.samples = String(data.length);
    figure.dataset.peak = String(max);
    if (total !== null) figure.dataset.total = String(total);
  }
  function fmt(v) { return !Number.isFinite(v) ? "-" : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }

  // clients ------------------------------------------------------------------------------
  async function loadClients() {
    [clients, apis] = await Promise.all([all("/clients"), all("/apis")]);
    const secrets = await Promise.all(clients.slice(0, 200).map((c) =>
      all("/clients/" + encodeURIComponent(c.client_id) + "/secrets").catch(() => [])));
    clients.forEach((c, i) => { c.secrets = secrets[i] || []; });
    const select = $("new-client-api");
    const keep = select.value;
    select.replaceChildren(el("option", { value: "" }, "(no grant)"),
      ...apis.map((a) => el("option", { value: a.identifier }, a.identifier)));
    if (keep) select.value = keep;
    renderClients();
    if (selected) showClient(selected);
  }
  function lastUse(c) {
    const times = (c.secrets || []).map((s) => s.last_used_at).filter(Boolean).sort();
    return times.length ? times[times.length - 1] : null;
  }
  function renderClients() {
    const q = $("client-search").value.trim().toLowerCase();
    const rows = clients.filter((c) => !q || [c.client_id, c.name, c.tenant || ""].some((v) => v.toLowerCase().includes(q)))
      .map((c) => el("tr", {},
        el("td", {}, el("code", {}, c.client_id)),
        el("td", {}, c.name),
        el("td", { class: c.enabled && !c.pending_approval ? "state-enabled" : "state-disabled" },
          c.pending_approval ? "pending approval" : (c.enabled ? "enabled" : "disabled")),
        el("td", {}, c.auth_method),
        el("td", {}, c.grants.map((g) => g.api + " (" + g.scopes.join(" ") + ")").join(", ")),
        el("td", {}, ago(lastUse(c))),
        el("td", {},
          el("button", { type: "button", onclick: () => showClient(c.client_id), "aria-label": "Secrets of " + c.name },
            "Secrets"), " ",
          el("button", { type: "button", "aria-label": (c.enabled ? "Disable " : "Enable ") + c.name,
            onclick: () => act((c.enabled ? "Disabling " : "Enabling ") + c.client_id, async () => {
              await api("PATCH", "/clients/" + encodeURIComponent(c.client_id), { enabled: !c.enabled });
              await loadClients();
            }) }, c.enabled ? "Disable" : "Enable"),
          ...(c.pending_approval ? [" ", el("button", { type: "button", "aria-label": "Approve " + c.name,
            onclick: () => act("Approving " + c.client_id, async () => {
              await api("POST", "/clients/" + encodeURIComponent(c.client_id) + "/approve", {});
              await loadClients();
            }) }, "Approve")] : []))));
    fill($("clients-table").tBodies[0], rows, q ? "no client matches" : "no clients yet");
  }
  $("client-search").addEventListener("input", renderClients);

  function showClient(clientId) {
    const c = clients.find((x) => x.client_id === clientId);
    if (!c) { $("client-detail").hidden = true; selected = null; return; }
    selected = clientId;
    $("client-detail").hidden = false;
    $("client-detail-title").textContent = "Client " + c.name + " (" + c.client_id + ")";
    const secrets = c.secrets || [];
    // the newest active secret: the latest created, and among equals (times have second resolution)
    // the one rotation did not give an end date
    const newest = secrets.filter((s) => s.state === "active").sort((a, b) =>
      a.created_at === b.created_at ? (a.expires_at ? -1 : 1) : a.created_at < b.created_at ? -1 : 1).pop();
    fill($("secrets-table").tBodies[0], secrets.map((s) => el("tr", {},
      el("td", {}, el("code", {}, s.secret_id), " ", s.hint),
      el("td", { class: "state-" + s.state }, s.state),
      el("td", {}, when(s.created_at)),
      el("td", {}, s.expires_at ? el("span", { class: "grace", "data-expires": s.expires_at }, when(s.expires_at)) : "never"),
      el("td", {}, ago(s.last_used_at)),
      el("td", {}, s.state === "active" ? el("button", { type: "button", "aria-label": "Revoke secret " + s.secret_id,
        onclick: () => act("Revoking secret " + s.secret_id, async () => {
          await api("DELETE", "/clients/" + encodeURIComponent(c.client_id) + "/secrets/" + encodeURIComponent(s.secret_id));
          await loadClients();
        }) }, "Revoke") : ""))), "no secrets (key- or certificate-based client)");
    const stale = secrets.filter((s) => s.state === "active" && newest && s !== newest &&
      s.last_used_at && s.last_used_at >= newest.created_at);
    const warning = $("old-secret-warning");
    warning.hidden = !stale.length;
    warning.textContent = stale.map((s) => "Secret " + s.secret_id + " (" + s.hint + ") is still in use (" +
      ago(s.last_used_at) + ") although a newer secret exists; it stops working " +
      (s.expires_at ? "at " + when(s.expires_at) : "only when revoked") + ". Move the client to its new secret.").join(" ");
    tickSecrets();
  }
  function tickSecrets() {
    for (const span of document.querySelectorAll("#secrets-table .grace")) {
      const left = new Date(span.dataset.expires).getTime() / 1000 - Date.now() / 1000;
      span.textContent = when(span.dataset.expires) + (left > 0 ? " (in " + countdown(left) + ")" : " (expired)");
    }
  }
  $("rotate-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const clientId = selected;
    act("Rotating the secret of " + clientId, async () => {
      const r = await api("POST", "/clients/" + encodeURIComponent(clientId) + "/secrets", { grace: $("rotate-grace").value });
      showSecretOnce(clientId, r.client_secret);
      await loadClients();
    });
  });
  $("revoke-client-tokens").addEventListener("click", () => act("Revoking every token of " + selected, () =>
    api("POST", "/tokens/revoke", { client_id: selected })));
  function showSecretOnce(clientId, secret) {
    $("secret-once").hidden = false;
    $("secret-once-client").textContent = clientId;
    $("secret-once-value").value = secret;
    $("secret-once-value").focus();
    $("secret-once-value").select();
  }
  $("secret-once-close").addEventListener("click", () => {
    $("secret-once-value").value = "";
    $("secret-once").hidden = true;
  });
  $("create-client-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    const identifier = form.api.value;
    const body = { name: form.name.value, auth_method: form.auth_method.value, grants: [] };
    if (form.tenant.value.trim()) body.tenant = form.tenant.value.trim();
    if (identifier) {
      const chosen = form.scopes.value.split(/\s+/).filter(Boolean);
      const known = (apis.find((a) => a.identifier === identifier) || { scopes: [] }).scopes;
      body.grants.push({ api: identifier, scopes: chosen.length ? chosen : known });
    }
    act("Creating client " + body.name, async () => {
      const created = await api("POST", "/clients", body);
      form.reset();
      if (created.client_secret) showSecretOnce(created.client_id, created.client_secret);
      selected = created.client_id;
      await loadClients();
    });
  });

  // APIs and grants ------------------------------------------------------------------------
  async function loadApis() {
    [apis, clients] = await Promise.all([all("/apis"), all("/clients")]);
    fill($("apis-table").tBodies[0], apis.map((a) => el("tr", {},
      el("td", {}, el("code", {}, a.identifier)), el("td", {}, a.name), el("td", {}, a.scopes.join(" ")),
      el("td", {}, duration(a.ttl)), el("td", {}, a.alg), el("td", {}, a.tenant || "shared"),
      el("td", {}, clients.flatMap((c) => c.grants.filter((g) => g.api === a.identifier)
        .map((g) => c.name + " (" + g.scopes.join(" ") + ")")).join(", ") || "nobody"))));
  }
  $("create-api-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    act("Saving API " + form.identifier.value, async () => {
      await api("PUT", "/apis/" + encodeURIComponent(form.identifier.value),
        { scopes: form.scopes.value.split(/\s+/).filter(Boolean), ttl: form.ttl.value, alg: form.alg.value });
      form.reset();
      await loadApis();
    });
  });

  // signing keys -------------------------------------------------------------------------
  async function loadKeys() {
    const keys = await all("/keys");
    for (const state of ["next", "active", "retired"]) {
      const items = keys.filter((k) => k.state === state).map((k) => el("li", {},
        el("code", {}, k.kid), " " + k.alg, el("br"), "created " + when(k.created_at),
        k.activated_at ? el("span", {}, el("br"), "active since " + when(k.activated_at)) : null,
        k.retired_at ? el("span", {}, el("br"), "retired " + when(k.retired_at)) : null));
      $("keys-" + state).replaceChildren(...(items.length ? items : [el("li", {}, "none")]));
    }
  }
  $("rotate-keys").addEventListener("click", () => act("Rotating signing keys", async () => {
    await api("POST", "/keys/rotate", {});
    await loadKeys();
  }));

  // revocations ----------------------------------------------------------------------------
  async function loadRevocations() {
    const r = await api("GET", "/revocations");
    fill($("revoked-tokens").tBodies[0], r.tokens.map((t) => el("tr", {},
      el("td", {}, el("code", {}, t.jti)), el("td", {}, t.client_id), el("td", {}, when(t.expires_at)))));
    fill($("revoked-clients").tBodies[0], r.clients.map((c) => el("tr", {},
      el("td", {}, el("code", {}, c.client_id)), el("td", {}, c.name), el("td", {}, when(c.tokens_revoked_before)))));
  }
  $("revoke-jti-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    act("Revoking token " + form.jti.value, async () => {
      await api("POST", "/tokens/revoke", { jti: form.jti.value });
      form.reset();
      await loadRevocations();
    });
  });

  // audit log --------------------------------------------------------------------------------
  async function loadAudit() {
    const form = $("audit-filters");
    const q = new URLSearchParams();
    for (const name of ["event", "actor", "client_id", "outcome"]) if (form[name].value) q.set(name, form[name].value);
    q.set("limit", "200");
    const r = await api("GET", "/audit?" + q.toString());
    $("audit-unavailable").hidden = r.available;
    const known = new Set(["time", "event", "outcome", "actor", "client_id"]);
    fill($("audit-table").tBodies[0], r.events.map((ev) => el("tr", {},
      el("td", {}, when(ev.time)), el("td", {}, ev.event), el("td", { class: ev.outcome === "success" ? "" : "state-revoked" }, ev.outcome),
      el("td", {}, ev.actor || ""), el("td", {}, ev.client_id || ""),
      el("td", { class: "mono" }, Object.entries(ev).filter(([k]) => !known.has(k))
        .map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(" ")))), "no matching events");
  }
  $("audit-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    loadAudit().catch((err) => status(err.message, "error"));
  });

  start().catch((e) => status(e.message, "error"));
})();
