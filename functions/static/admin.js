// The admin page: profiles list, the spec's form and Validation Test, history, batch jobs, account pool.
// A client of the HTTP API (/api/openapi.json); no data is built into the page.
"use strict";

const KEY_STORAGE = "m365profiles.functionKey";
const PAGE_SIZE = 25;
const KIND_LABELS = {mfa: "MFA", common: "Common", app: "App"};
const STATUS_LABELS = {passed: "Passed", failed: "Failed", error: "Error"};
// Messages whose solutions send the customer to the reserved IP addresses (spec Message 1).
const RESERVED_IP_HINT = /reserved IP addresses/i;
const FIELD_IDS = {name: "name", description: "description", mfaEnabled: "mfaEnabled", username: "username",
                   password: "password", "adminCenter.url": "url", "adminCenter.mode": "url", "adminCenter": "url"};

const $ = (id) => document.getElementById(id);
const state = {
  key: "", texts: {messages: {}, limitations: {}}, profiles: [], next: null, current: null,
  defaultAdminUrl: null, jobTimer: null, loadedTenant: null, listRequest: 0, poolRequest: 0,
};

// ---------------------------------------------------------------- key and API

function takeKey() {
  // The key comes once (the ?code= of the link or the dialog) and is kept for this browser session only.
  const fromUrl = new URLSearchParams(location.search).get("code");
  if (fromUrl) sessionStorage.setItem(KEY_STORAGE, fromUrl);
  state.key = sessionStorage.getItem(KEY_STORAGE) || "";
}

function askKey(message) {
  const dialog = $("keyDialog");
  $("keyError").hidden = !message;
  $("keyError").textContent = message || "";
  $("keyInput").value = "";
  if (!dialog.open) dialog.showModal();
  $("keyInput").focus();
}

async function api(path, options = {}) {
  const headers = Object.assign({"x-functions-key": state.key}, options.headers || {});
  if (options.body !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch("/api" + path, Object.assign({}, options, {headers}));
  } catch (err) {
    return {status: 0, body: {detail: "The service could not be reached (" + err.message + ")."}};
  }
  const text = await response.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch (err) { body = {detail: text.slice(0, 300)}; }
  }
  if (response.status === 401) askKey("The service refused the function key: enter it again.");
  return {status: response.status, etag: response.headers.get("ETag"), body, headers: response.headers};
}

const tenant = () => $("tenant").value.trim().toLowerCase();
const announce = (text) => { $("status").textContent = text; };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function problemText(res) {
  const b = res.body || {};
  return b.detail || b.title || ("The service answered HTTP " + res.status + ".");
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

// ---------------------------------------------------------------- profiles list

function profileIdentity(p) {
  // Username of MFA and common profiles; the client id of an app profile.
  return p.username || p.clientId || (p.app && p.app.clientId) || "";
}

function matchesSearch(p) {
  const q = $("search").value.trim().toLowerCase();
  if (!q) return true;
  return [p.name, profileIdentity(p), p.description].some((v) => (v || "").toLowerCase().includes(q));
}

function visibleProfiles() { return state.profiles.filter(matchesSearch); }

function lastValidationCell(p) {
  const lv = p.lastValidation;
  if (!lv) return el("td", {}, el("span", {class: "status-never", text: "Never validated"}));
  const label = STATUS_LABELS[lv.status] || lv.status;
  const message = lv.messageId ? (state.texts.messages[lv.messageId] || "") : "";
  return el("td", {},
    el("span", {class: "status-" + lv.status, text: label + (lv.messageId ? ": " + lv.messageId : "")}),
    message ? el("span", {class: "sub", text: message}) : null,
    el("span", {class: "sub", text: when(lv.at)}));
}

function limitationsCell(p) {
  const details = p.limitationDetails || [];
  if (!details.length) return el("td", {}, el("span", {class: "sr-only", text: "None"}));
  const text = details.map((l) => l.text).join(" ");
  return el("td", {}, el("span", {class: "badge limitations", title: text,
    text: details.length + (details.length === 1 ? " limitation" : " limitations")}),
    el("span", {class: "sr-only", text: ": " + text}));
}

function renderProfiles() {
  const tbody = document.querySelector("#profiles tbody");
  tbody.replaceChildren();
  const shown = visibleProfiles();
  for (const p of shown) {
    const kind = p.kind || "common";
    const row = el("tr", {"data-id": p.id, class: state.current && state.current.id === p.id ? "selected" : null},
      el("td", {}, el("button", {type: "button", class: "link", text: p.name, onclick: () => openProfile(p)})),
      el("td", {}, el("span", {class: "badge " + kind, text: KIND_LABELS[kind] || kind})),
      el("td", {text: profileIdentity(p)}),
      lastValidationCell(p),
      limitationsCell(p));
    tbody.append(row);
  }
  if (!shown.length) {
    tbody.append(el("tr", {}, el("td", {colspan: "5", class: "hint",
      text: state.profiles.length ? "No loaded profile matches the search." : "No profiles match these filters."})));
  }
  const more = state.next ? " More profiles can be loaded." : "";
  $("listSummary").textContent = `${shown.length} of ${state.profiles.length} loaded profiles shown.${more}`;
  $("more").hidden = !state.next;
  const ids = shown.filter((p) => (p.kind || "common") !== "app").map((p) => p.id);
  $("startJob").disabled = !ids.length;
  $("startJob").textContent = `Validate the ${ids.length} listed profile${ids.length === 1 ? "" : "s"}`;
  renderPoolChoices();
}

async function loadProfiles({append = false} = {}) {
  $("listErrors").textContent = "";
  const params = new URLSearchParams({pageSize: String(PAGE_SIZE)});
  if ($("kindFilter").value) params.set("kind", $("kindFilter").value);
  if ($("statusFilter").value) params.set("lastStatus", $("statusFilter").value);
  if (append && state.next) params.set("continuationToken", state.next);
  const request = ++state.listRequest;
  const res = await api(`/tenants/${tenant()}/profiles?${params}`);
  if (request !== state.listRequest) return;  // a newer list (another tenant or filter) was asked for
  if (!append) state.profiles = [];
  if (res.status !== 200) {
    state.next = null;
    let text = problemText(res);
    if ($("kindFilter").value === "app" && res.status === 422) text = "This service has no app profiles yet.";
    $("listErrors").textContent = text;
    renderProfiles();
    return;
  }
  state.profiles = state.profiles.concat(res.body.items || []);
  state.next = res.body.continuationToken || null;
  learnDefaultAdminUrl();
  renderProfiles();
}

function learnDefaultAdminUrl() {
  // The tenant's default admin center URL, as the service derived it for a saved profile.
  const known = state.profiles.find((p) => p.adminCenter && p.adminCenter.mode === "default" && p.adminCenter.effectiveUrl);
  if (known) state.defaultAdminUrl = known.adminCenter.effectiveUrl;
}

function guessAdminUrl() {
  if (state.current && state.current.adminCenter && state.current.adminCenter.effectiveUrl) {
    return state.current.adminCenter.effectiveUrl;
  }
  if (state.defaultAdminUrl) return state.defaultAdminUrl;
  // From the account's initial domain: name.onmicrosoft.com -> https://name-admin.sharepoint.com
  const m = /@([a-z0-9-]+)\.onmicrosoft\.(com|us)$/i.exec($("username").value.trim());
  if (m) return `https://${m[1].toLowerCase()}-admin.sharepoint.${m[2].toLowerCase()}`;
  return "";
}

// ---------------------------------------------------------------- the form

const mode = () => (document.querySelector("input[name=mode]:checked") || {}).value || "default";

function formBody() {
  const body = {name: $("name").value, description: $("description").value, mfaEnabled: $("mfaEnabled").checked,
                username: $("username").value.trim(),
                adminCenter: {mode: mode(), url: mode() === "custom" ? $("url").value.trim() : null}};
  if ($("password").value) body.password = $("password").value;
  if (!state.current) {  // a new profile: a blank field is a missing one (the API says "Enter ...")
    if (!body.name.trim()) delete body.name;
    if (!body.username) delete body.username;
  }
  return body;
}

function refreshForm() {
  const mfa = $("mfaEnabled").checked;
  const cur = state.current;
  // Ticked: the spec's list of MFA limitations; a saved MFA profile shows its own list instead.
  const own = cur && cur.kind === "mfa" && (cur.limitationDetails || []).length;
  $("mfaLimitations").hidden = !mfa || !!own;
  $("profileLimitations").hidden = !mfa || !own;
  $("conversionNote").hidden = !(cur && cur.kind === "mfa" && !mfa);
  $("usernameMfaNote").hidden = !mfa;
  $("passwordLabel").textContent = mfa ? "Password (app password)" : "Password";
  $("passwordMfaHint").hidden = !mfa;
  $("passwordCommonHint").hidden = mfa;
  $("passwordSavedHint").hidden = !(cur && cur.passwordSet);
  $("urlMfaNote").hidden = !mfa;
  if (mfa) {
    // MFA profiles need the custom admin center URL: forced, and filled in from the tenant when known.
    $("modeCustom").checked = true;
    if (!$("url").value) $("url").value = guessAdminUrl();
  }
  $("modeDefault").disabled = mfa;
  $("url").disabled = mode() !== "custom";
}

function clearFieldErrors() {
  $("errors").textContent = "";
  for (const id of new Set(Object.values(FIELD_IDS))) {
    $(id + "-error").textContent = "";
    $(id).removeAttribute("aria-invalid");
  }
}

function showFieldErrors(res) {
  clearFieldErrors();
  const b = res.body || {};
  const general = [];
  let first = null;
  for (const e of b.errors || []) {
    const id = FIELD_IDS[e.field];
    if (!id) { general.push((e.field ? e.field + ": " : "") + e.detail); continue; }
    const box = $(id + "-error");
    box.textContent = box.textContent ? box.textContent + " " + e.detail : e.detail;
    $(id).setAttribute("aria-invalid", "true");
    first = first || $(id);
  }
  $("errors").textContent = [problemText(res)].concat(general).join(" ");
  if (first && !first.disabled) first.focus();
}

function clearOutcome() {
  $("outcome").replaceChildren();
  $("outcome").className = "";
  $("roleRow").hidden = true;
  $("userRole").value = "";
  $("userRoleNote").textContent = "";
}

function showOutcome(o) {
  const box = $("outcome");
  box.replaceChildren();
  box.className = o.status;
  // The User Role after a test: shown when the test got that far (blank with the note for MFA).
  $("roleRow").hidden = o.status !== "passed" && !o.userRole && !o.userRoleNote;
  $("userRole").value = o.userRole || "";
  $("userRoleNote").textContent = o.userRoleNote || "";
  if (o.status === "passed") {
    box.append(el("h3", {class: "status-passed", text: "Validation Test passed"}));
  } else {
    box.append(el("h3", {class: "status-" + o.status, text: `${o.messageId}: ${o.message}`}));
    if (o.cause) box.append(el("p", {text: o.cause}));
    if (o.solutions && o.solutions.length) {
      box.append(el("p", {text: o.solutionsIntro || "Solution:"}));
      box.append(el("ol", {class: "solutions"}, ...o.solutions.map((s) => el("li", {text: s}))));
    }
    if (o.messageId === "ACCESS_POLICY_BLOCKED" || (o.solutions || []).some((s) => RESERVED_IP_HINT.test(s))) {
      box.append(el("div", {class: "row"}, el("button", {type: "button", class: "secondary", id: "outcomeReservedIps",
        text: "Download reserved IP addresses", onclick: downloadReservedIps})));
    }
  }
  const ev = o.evidence || {};
  const facts = [["AADSTS code", ev.aadstsCode], ["Error code", ev.errorCode !== ev.aadstsCode ? ev.errorCode : null], ["HTTP status", ev.httpStatus],
                 ["Step", ev.step], ["Correlation ID", ev.correlationId], ["Trace ID", ev.traceId],
                 ["Retry after (s)", ev.retryAfterSeconds], ["Requests to Microsoft 365", ev.upstreamRequests]]
    .filter(([, v]) => v !== null && v !== undefined && v !== "");
  if (facts.length && o.status !== "passed") {
    box.append(el("h3", {text: "Evidence"}));
    box.append(el("dl", {class: "evidence", id: "evidence"}, ...facts.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: String(v)})])));
  }
  box.append(el("p", {class: "hint", text: (o.checks || []).map((c) => `${c.name}: ${c.status}`).join(" · ")}));
}

function showProfileLimitations(p) {
  const box = $("profileLimitations");
  box.hidden = true;
  box.replaceChildren();
  const details = (p && p.limitationDetails) || [];
  if (details.length) {
    box.append(el("p", {text: "Limitations of this profile:"}), el("ul", {}, ...details.map((l) => el("li", {text: l.text}))));
  }
}

function setFormEnabled(enabled) {
  for (const node of $("form").querySelectorAll("input, textarea, button")) node.disabled = !enabled;
}

function edit(p) {
  state.current = p;
  const isApp = p && p.kind === "app";
  $("formTitle").textContent = p ? (isApp ? "App profile " : "Edit ") + p.name : "New service account profile";
  $("appNotice").hidden = !isApp;
  $("appNotice").textContent = isApp
    ? "This is an app profile (an app registration with a certificate). This page cannot edit or test app profiles yet; "
      + "its client ID is " + (profileIdentity(p) || "not shown") + "." : "";
  setFormEnabled(!isApp);
  $("name").value = p ? p.name : "";
  $("description").value = p ? (p.description || "") : "";
  $("mfaEnabled").checked = p ? !!p.mfaEnabled : false;
  $("username").value = p ? (p.username || "") : "";
  $("password").value = "";  // never pre-filled
  const m = p && p.adminCenter ? p.adminCenter.mode : "default";
  (m === "custom" ? $("modeCustom") : $("modeDefault")).checked = true;
  $("url").value = p && p.adminCenter && p.adminCenter.url ? p.adminCenter.url : "";
  $("delete").hidden = !p || isApp;
  clearFieldErrors();
  clearOutcome();
  showProfileLimitations(p);
  if (!isApp) refreshForm();
  renderProfiles();
  if (p) loadHistory(p); else $("historySection").hidden = true;
}

async function openProfile(p) {
  if (p.kind === "app") { edit(p); $("formTitle").focus(); return; }
  const res = await api(`/tenants/${tenant()}/profiles/${p.id}`);
  if (res.status !== 200) { $("listErrors").textContent = problemText(res); return; }
  edit(Object.assign(res.body, {etag: res.etag}));
  $("formTitle").focus();
}

async function save(event) {
  event.preventDefault();
  clearFieldErrors();
  const cur = state.current;
  const res = cur
    ? await api(`/tenants/${tenant()}/profiles/${cur.id}`, {method: "PATCH", body: JSON.stringify(formBody()),
        headers: {"If-Match": cur.etag, "content-type": "application/merge-patch+json"}})
    : await api(`/tenants/${tenant()}/profiles`, {method: "POST", body: JSON.stringify(formBody())});
  if (res.status >= 300) { showFieldErrors(res); return; }
  const converted = cur && cur.kind === "mfa" && res.body.kind === "common";
  edit(Object.assign(res.body, {etag: res.etag}));
  announce(converted ? "Saved: converted to a common profile." : "Saved.");
  if (converted) {
    $("outcome").className = "passed";
    $("outcome").replaceChildren(el("p", {id: "converted", text: "Converted to a common service account profile. It signs in with modern authentication and has no MFA limitations."}));
  }
  await loadProfiles();
}

async function runTest() {
  clearOutcome();            // the previous result goes as soon as a new test starts
  clearFieldErrors();
  $("test").disabled = true;
  $("outcome").replaceChildren(el("p", {class: "hint", id: "testing", text: "Validation Test running…"}));
  try {
    const cur = state.current;
    const res = cur && !$("password").value && !formChanged(cur)
      ? await api(`/tenants/${tenant()}/profiles/${cur.id}/validate`, {method: "POST"})
      : await api(`/tenants/${tenant()}/validation-tests`, {method: "POST", body: JSON.stringify(formBody())});
    $("outcome").replaceChildren();
    if (res.status !== 200) { showFieldErrors(res); return; }
    showOutcome(res.body);
    announce(res.body.status === "passed" ? "Validation Test passed." : "Validation Test: " + res.body.message);
    if (cur) { loadProfiles(); loadHistory(cur); }
  } finally {
    $("test").disabled = false;
  }
}

function formChanged(p) {
  const b = formBody();
  return b.username !== p.username || b.mfaEnabled !== p.mfaEnabled || b.adminCenter.mode !== p.adminCenter.mode
    || (b.adminCenter.mode === "custom" && b.adminCenter.url !== p.adminCenter.url);
}

async function remove() {
  const cur = state.current;
  if (!cur || !confirm(`Delete the profile ${cur.name}?`)) return;
  const res = await api(`/tenants/${tenant()}/profiles/${cur.id}`, {method: "DELETE", headers: {"If-Match": cur.etag}});
  if (res.status !== 204) { showFieldErrors(res); return; }
  edit(null);
  announce("Deleted.");
  loadProfiles();
}

// ---------------------------------------------------------------- history

async function loadHistory(p) {
  $("historySection").hidden = false;
  $("historyTitle").textContent = "Validation history of " + p.name;
  const tbody = document.querySelector("#history tbody");
  const changes = $("changes");
  changes.replaceChildren(...(p.history || []).slice().reverse().map((h) =>
    el("li", {text: `${when(h.at)}: ${h.event}${h.detail ? " (" + h.detail + ")" : ""}`})));
  if (p.kind === "app") { tbody.replaceChildren(); return; }
  const res = await api(`/tenants/${tenant()}/profiles/${p.id}/validations`);
  tbody.replaceChildren();
  if (res.status !== 200) {
    tbody.append(el("tr", {}, el("td", {colspan: "4", class: "errors", text: problemText(res)})));
    return;
  }
  for (const r of res.body.items) {
    tbody.append(el("tr", {},
      el("td", {text: when(r.at)}), el("td", {text: r.reason}),
      el("td", {class: "status-" + r.status, text: STATUS_LABELS[r.status] || r.status}),
      el("td", {text: r.messageId ? `${r.messageId}: ${r.message}` : (r.userRoleNote || r.userRole || "")})));
  }
  if (!res.body.items.length) tbody.append(el("tr", {}, el("td", {colspan: "4", class: "hint", text: "Not validated yet."})));
}

// ---------------------------------------------------------------- batch job

async function startJob() {
  const ids = visibleProfiles().filter((p) => (p.kind || "common") !== "app").map((p) => p.id);
  if (!ids.length) return;
  clearInterval(state.jobTimer);
  $("job").hidden = false;
  $("jobSummary").hidden = true;
  $("jobProgress").value = 0;
  $("jobText").textContent = "Starting…";
  const res = await api(`/tenants/${tenant()}/validation-jobs`, {method: "POST", body: JSON.stringify({profileIds: ids})});
  if (res.status !== 202) { $("jobText").textContent = problemText(res); return; }
  showJob(res.body);
  const id = res.body.id;
  state.jobTimer = setInterval(async () => {
    const r = await api(`/tenants/${tenant()}/validation-jobs/${id}`);
    if (r.status !== 200) { $("jobText").textContent = problemText(r); clearInterval(state.jobTimer); return; }
    showJob(r.body);
    if (r.body.state === "completed" || r.body.state === "completedWithErrors") {
      clearInterval(state.jobTimer);
      announce("Batch validation finished.");
      loadProfiles();
    }
  }, 1000);
}

function showJob(job) {
  const pct = Math.round(job.percent);
  $("jobProgress").value = pct;
  $("jobProgress").textContent = pct + " %";
  const eta = job.eta && job.state === "running" ? ", done about " + when(job.eta) : "";
  $("jobText").textContent = `${job.done} of ${job.total} validated (${pct} %): ${job.passed} passed, `
    + `${job.failed} failed, ${job.errors} errors${job.throttled ? ", " + job.throttled + " throttled" : ""}${eta}.`;
  const final = job.state === "completed" || job.state === "completedWithErrors";
  $("jobTitle").textContent = final ? "Batch validation finished" : "Batch validation running";
  if (!final) return;
  const tbody = document.querySelector("#jobSummary tbody");
  const rows = [["Passed", job.passed]].concat(Object.entries(job.byMessageId).map(([mid, n]) => [mid, n]));
  if (job.errors && !Object.keys(job.byMessageId).length) rows.push(["Errors", job.errors]);
  tbody.replaceChildren(...rows.map(([label, n]) => el("tr", {},
    el("td", {text: label + (state.texts.messages[label] ? ": " + state.texts.messages[label] : "")}),
    el("td", {text: String(n)}))));
  $("jobSummary").hidden = false;
}

// ---------------------------------------------------------------- account pool

let poolMembers = [];

async function loadPool() {
  $("poolErrors").textContent = "";
  const request = ++state.poolRequest;
  const res = await api(`/tenants/${tenant()}/account-pool`);
  if (request !== state.poolRequest) return;
  const tbody = document.querySelector("#pool tbody");
  tbody.replaceChildren();
  if (res.status !== 200) { $("poolErrors").textContent = problemText(res); poolMembers = []; return; }
  poolMembers = res.body.members;
  for (const m of poolMembers) {
    tbody.append(el("tr", {"data-id": m.profileId},
      el("td", {text: m.username || (m.exists ? m.profileId : m.profileId + " (deleted)")}),
      el("td", {class: m.healthy ? "status-passed" : "status-failed",
                text: m.healthy ? "Healthy" : "Unhealthy" + (m.lastValidation && m.lastValidation.messageId ? ": " + m.lastValidation.messageId : "")}),
      el("td", {text: m.leased ? "Leased until " + when(m.leasedUntil) : "Free"}),
      el("td", {text: m.resting ? "Resting until " + when(m.restUntil) : "No"}),
      el("td", {text: m.lastLeasedAt ? when(m.lastLeasedAt) : "Never"}),
      el("td", {text: String(m.throttleReports)}),
      el("td", {}, el("button", {type: "button", class: "secondary", text: "Remove",
        "aria-label": "Remove " + (m.username || m.profileId) + " from the pool", onclick: () => setPool(poolMembers.map((x) => x.profileId).filter((x) => x !== m.profileId))}))));
  }
  if (!poolMembers.length) tbody.append(el("tr", {}, el("td", {colspan: "7", class: "hint", text: "The pool has no members."})));
  renderPoolChoices();
}

function renderPoolChoices() {
  const select = $("poolAdd");
  const inPool = new Set(poolMembers.map((m) => m.profileId));
  const choices = state.profiles.filter((p) => p.kind === "mfa" && !inPool.has(p.id));
  const chosen = select.value;  // a refresh of the list or the pool keeps the operator's choice
  select.replaceChildren(...choices.map((p) => el("option", {value: p.id, text: `${p.name} (${p.username})`})));
  if (choices.some((p) => p.id === chosen)) select.value = chosen;
  select.disabled = $("poolAddButton").disabled = !choices.length;
  if (!choices.length) select.append(el("option", {value: "", text: "No loaded MFA profile to add"}));
}

async function setPool(members) {
  const res = await api(`/tenants/${tenant()}/account-pool`, {method: "PUT", body: JSON.stringify({members})});
  if (res.status !== 200) { $("poolErrors").textContent = problemText(res); return; }
  await loadPool();
  announce("Account pool saved.");
}

// ---------------------------------------------------------------- reserved IP addresses

async function downloadReservedIps() {
  // Fetched with the key in a header (never in a link), then saved as the service's CSV.
  const res = await fetch("/api/reserved-ip-addresses?format=csv", {headers: {"x-functions-key": state.key}});
  if (!res.ok) { announce("Could not download the reserved IP addresses (HTTP " + res.status + ")."); return; }
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", {href: url, download: "reserved-ip-addresses.csv", class: "sr-only"});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------- start

async function loadTexts() {
  const res = await fetch("admin/texts.json");
  if (res.ok) state.texts = await res.json();
}

function reloadTenant() {
  if (tenant() === state.loadedTenant) return;
  state.loadedTenant = tenant();
  state.defaultAdminUrl = null;
  edit(null);
  loadProfiles();
  loadPool();
}

document.addEventListener("DOMContentLoaded", async () => {
  takeKey();
  $("keyForm").addEventListener("submit", () => {
    sessionStorage.setItem(KEY_STORAGE, $("keyInput").value);
    state.key = $("keyInput").value;
    state.loadedTenant = null;
    reloadTenant();
  });
  $("changeKey").addEventListener("click", () => askKey(""));
  $("form").addEventListener("submit", save);
  $("test").addEventListener("click", runTest);
  $("delete").addEventListener("click", remove);
  $("new").addEventListener("click", () => { edit(null); $("name").focus(); });
  $("mfaEnabled").addEventListener("change", refreshForm);
  for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", refreshForm);
  $("username").addEventListener("change", () => { if ($("mfaEnabled").checked && !$("url").value) refreshForm(); });
  $("tenant").addEventListener("change", reloadTenant);
  $("search").addEventListener("input", renderProfiles);
  $("kindFilter").addEventListener("change", () => loadProfiles());
  $("statusFilter").addEventListener("change", () => loadProfiles());
  $("more").addEventListener("click", () => loadProfiles({append: true}));
  $("startJob").addEventListener("click", startJob);
  $("poolRefresh").addEventListener("click", loadPool);
  $("poolAddButton").addEventListener("click", () => {
    if ($("poolAdd").value) setPool(poolMembers.map((m) => m.profileId).concat([$("poolAdd").value]));
  });
  $("reservedIps").addEventListener("click", downloadReservedIps);
  await loadTexts();
  edit(null);
  if (!state.key) { askKey(""); return; }
  reloadTenant();
});
