// The admin page: profiles list, the spec's form and Validation Test, app profiles (certificate, consent,
// permissions, rotation, migration), history, batch jobs, account pool.
// A client of the HTTP API (/api/openapi.json); no data is built into the page.
"use strict";

const KEY_STORAGE = "m365profiles.functionKey";
const PAGE_SIZE = 25;
const KIND_LABELS = {mfa: "MFA", common: "Common", app: "App"};
const STATUS_LABELS = {passed: "Passed", failed: "Failed", error: "Error"};
// Messages whose solutions send the customer to the reserved IP addresses (spec Message 1).
const RESERVED_IP_HINT = /reserved IP addresses/i;
const FIELD_IDS = {name: "name", description: "description", mfaEnabled: "mfaEnabled", username: "username",
                   password: "password", "adminCenter.url": "url", "adminCenter.mode": "url", "adminCenter": "url",
                   clientId: "clientId", workload: "workload", sharePointUrl: "sharePointUrl",
                   certificate: "pfxFile", "certificate.pfx": "pfxFile", "certificate.generate": "pfxFile",
                   "certificate.password": "pfxPassword"};
const MIGRATE_FIELD_IDS = {clientId: "migrateClientId", workload: "migrateWorkload", sharePointUrl: "migrateSharePointUrl"};
// Certificate days left at or below which the page warns (the Validation Test's CERTIFICATE_EXPIRING).
const EXPIRY_WARNING_DAYS = 30;
const URL_IN_TEXT = /https:\/\/[^\s,;<>"')]+[^\s,;<>"').]/g;
// Name the policy: a failed test's explanation is "pending" until the tenant's sign-in log has its entry (seconds
// to minutes); the page looks at the profile's validation history until it is settled, for at most this long.
const EXPLANATION_WAIT_MS = 120000;
const EXPLANATION_POLL_MS = [2000, 2000, 3000, 5000];
// Graph's conditionalAccessPolicy.state and grant control names, as the Microsoft Entra admin center words them.
const POLICY_STATES = {enabled: "On", enabledForReportingButNotEnforced: "Report-only", disabled: "Off"};
const CONTROL_LABELS = {block: "Block access", mfa: "Require multifactor authentication",
  compliantDevice: "Require device to be marked as compliant", domainJoinedDevice: "Require Microsoft Entra hybrid joined device",
  approvedApplication: "Require approved client app", compliantApplication: "Require app protection policy",
  passwordChange: "Require password change", authenticationStrength: "Require authentication strength"};

const $ = (id) => document.getElementById(id);
const state = {
  key: "", texts: {messages: {}, limitations: {}, workloads: {}}, profiles: [], next: null, current: null, migration: null,
  defaultAdminUrl: null, jobTimer: null, loadedTenant: null, listRequest: 0, poolRequest: 0,
  explanationWatch: null,  // {tenant, profileId, recordId, started}: the pending explanation being looked for
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
  // Username of MFA and common profiles; the client id of an app profile (a migrated one keeps its old username).
  if (p.kind === "app") return p.clientId || "";
  return p.username || p.clientId || "";
}

function daysLeftText(cert) {
  if (!cert) return "";
  const d = cert.daysLeft;
  if (d < 0) return `Certificate expired ${-d} day${d === -1 ? "" : "s"} ago`;
  if (d === 0) return "Certificate expires today";
  return `Certificate: ${d} day${d === 1 ? "" : "s"} left`;
}

function expiryClass(cert) {
  if (!cert) return "";
  return cert.daysLeft < 0 ? "expired" : (cert.daysLeft <= EXPIRY_WARNING_DAYS ? "expiring" : "valid");
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
  // The catalog's text, with the profile's tenant where it names one ({code} is only known from the outcome).
  const message = lv.messageId ? (state.texts.messages[lv.messageId] || "").replace(/\{tenantId\}/g, p.tenantId || tenant())
    .replace(/:? ?\{code\}/g, "") : "";
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
      el("td", {}, el("span", {class: kind === "app" ? "mono" : null, text: profileIdentity(p)}),
        kind === "app" && p.certificate
          ? el("span", {class: "sub cert-" + expiryClass(p.certificate), text: daysLeftText(p.certificate)}) : null),
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
  const ids = shown.map((p) => p.id);
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
const chosenKind = () => (document.querySelector("input[name=kind]:checked") || {}).value || "common";
const certSource = () => (document.querySelector("input[name=certSource]:checked") || {}).value || "generate";
const isAppForm = () => chosenKind() === "app";

async function fileBase64(file) {
  // The PFX read in the browser and sent as base64 (the API imports it into Key Vault).
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function certificateBody() {
  // {generate: true}, or {pfx, password} from the chosen file; null (with a field error) when no file is chosen.
  if (certSource() === "generate") return {generate: true};
  const file = $("pfxFile").files[0];
  if (!file) {
    showFieldErrors({status: 422, body: {detail: "Choose the certificate.",
      errors: [{field: "certificate.pfx", detail: "Choose the .pfx file of the certificate (with its private key)."}]}});
    return null;
  }
  const body = {pfx: await fileBase64(file)};
  if ($("pfxPassword").value) body.password = $("pfxPassword").value;
  return body;
}

function forgetPfx() {
  $("pfxFile").value = "";
  $("pfxPassword").value = "";  // never kept, never pre-filled
}

async function appFormBody() {
  const body = {name: $("name").value, description: $("description").value, clientId: $("clientId").value.trim(),
                workload: $("workload").value, sharePointUrl: $("sharePointUrl").value.trim() || null};
  if (state.current) return body;  // a saved app profile: a merge patch (its certificate changes by rotation)
  const certificate = await certificateBody();
  if (!certificate) return null;
  Object.assign(body, {kind: "app", certificate});
  if (!body.name.trim()) delete body.name;
  if (!body.clientId) delete body.clientId;
  if (!body.sharePointUrl) delete body.sharePointUrl;
  return body;
}

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

function showKind() {
  // The kind choice shows the user-account fields (MFA / common) or the app-profile fields.
  const app = isAppForm();
  const cur = state.current;
  for (const id of ["userFields", "testNotes", "advancedSettings"]) $(id).hidden = app;
  $("appFields").hidden = !app;
  $("appAccess").hidden = !(app && cur);
  $("pfxFields").hidden = certSource() !== "pfx";
  $("testHint").hidden = !(app && !cur);
  $("test").disabled = app && !cur;
  $("kindHint").textContent = app
    ? "An app profile signs in without a user account or password, as SharePoint Online and Microsoft Graph " +
      "recommend for services. It needs an app registration of the tenant with application permissions and admin consent."
    : "";
  $("kindHint").hidden = !app;
  const workload = state.texts.workloads[$("workload").value];
  $("workloadHint").textContent = workload ? workloadText(workload) : "The application permissions the app needs.";
}

function workloadText(w) {
  const perms = [["Microsoft Graph", w.graph], ["SharePoint", w.sharepoint]]
    .filter(([, list]) => list && list.length).map(([r, list]) => `${r}: ${list.join(", ")}`).join("; ");
  return `${w.description} Application permissions: ${perms}.`;
}

function refreshForm() {
  const kind = chosenKind();
  if (kind !== "app") $("mfaEnabled").checked = kind === "mfa";
  showKind();
  if (kind === "app") return;
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

function clearFieldErrors(ids = FIELD_IDS, box = $("errors")) {
  box.textContent = "";
  for (const id of new Set(Object.values(ids))) {
    $(id + "-error").textContent = "";
    $(id).removeAttribute("aria-invalid");
  }
}

function showFieldErrors(res, ids = FIELD_IDS, generalBox = $("errors")) {
  clearFieldErrors(ids, generalBox);
  const b = res.body || {};
  const general = [];
  let first = null;
  for (const e of b.errors || []) {
    const id = ids[e.field];
    if (!id) { general.push((e.field ? e.field + ": " : "") + e.detail); continue; }
    const box = $(id + "-error");
    box.textContent = box.textContent ? box.textContent + " " + e.detail : e.detail;
    $(id).setAttribute("aria-invalid", "true");
    if (!first && !$(id).disabled && $(id).offsetParent !== null) first = $(id);
  }
  generalBox.textContent = [problemText(res)].concat(general).join(" ");
  if (first) first.focus();
}

function textWithLinks(text) {
  // A solution's text with its https links clickable (opened in a new tab).
  const span = el("span");
  let last = 0;
  for (const m of text.matchAll(URL_IN_TEXT)) {
    span.append(text.slice(last, m.index),
      el("a", {href: m[0], target: "_blank", rel: "noopener noreferrer", text: m[0]}));
    last = m.index + m[0].length;
  }
  span.append(text.slice(last));
  return span;
}

function clearOutcome() {
  if (state.current && state.current.kind === "app") {
    renderPermissions(state.current, null);
    $("consentRow").hidden = !state.current.adminConsentUrl || !!state.migration;
  }
  state.explanationWatch = null;  // the explanation looked for belongs to the outcome that goes
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
  const app = !!(state.current && state.current.kind === "app") || o.grantedPermissions !== undefined;
  if (app) $("roleRow").hidden = true;  // an app has no user role
  if (o.status === "passed") {
    box.append(el("h3", {class: "status-passed", text: "Validation Test passed"}));
    if (o.messageId) {  // passed with a warning (CERTIFICATE_EXPIRING)
      box.append(el("div", {class: "note", id: "outcomeWarning"},
        el("p", {}, el("strong", {text: `Warning: ${o.messageId}: ${o.message}`})),
        (o.solutions || []).length ? el("ol", {class: "solutions"}, ...o.solutions.map((s) => el("li", {}, textWithLinks(s)))) : null));
    }
  } else {
    box.append(el("h3", {class: "status-" + o.status, text: `${o.messageId}: ${o.message}`}));
    if (o.cause) box.append(el("p", {text: o.cause}));
    // Next to the spec's message: the policy named from the sign-in log (pending, explained or unavailable).
    if (o.explanation) box.append(explanationSection(o.explanation, o.recordId));
    box.append(el("p", {id: "solutionsIntro", text: o.solutionsIntro || "Solution:"}),
               el("ol", {class: "solutions", id: "solutions"}, ...(o.solutions || []).map((s) => el("li", {}, textWithLinks(s)))));
    showSuggestedStep(o.explanation);
    const consentUrl = state.current && state.current.adminConsentUrl;
    if (consentUrl && (o.messageId === "APP_CONSENT_MISSING" || o.messageId === "APP_PERMISSION_MISSING")) {
      box.append(el("p", {}, el("a", {id: "outcomeConsent", href: consentUrl, target: "_blank",
        rel: "noopener noreferrer", text: "Give admin consent in Microsoft Entra ID"})));
      $("consentRow").hidden = true;  // the outcome carries it
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
  if (app) {
    const facts = [["SharePoint Online URL", o.sharePointUrl], ["Certificate", o.certificate ? o.certificate.thumbprint.toUpperCase() : null],
                   ["Certificate valid until", o.certificate ? when(o.certificate.notAfter) : null]]
      .filter(([, v]) => v);
    if (o.certificate) {
      box.append(el("p", {id: "outcomeCertificate", class: "cert-" + expiryClass(o.certificate), text: daysLeftText(o.certificate) + "."}));
    }
    if (facts.length) box.append(el("dl", {class: "evidence"}, ...facts.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: String(v)})])));
    renderPermissions(state.current, o);
  }
  box.append(el("p", {class: "hint", text: (o.checks || []).map((c) => `${c.name}: ${c.status}`).join(" · ")}));
}

// ---------------------------------------------------------------- explanation (name the policy)

function explanationHeadline(x, stillPending, {compact = false} = {}) {
  if (x.state === "pending") {
    return stillPending ? `Still pending after ${EXPLANATION_WAIT_MS / 60000} minutes: the tenant's sign-in log has no entry for this test yet.`
      : "Looking in the tenant's sign-in log…";
  }
  if (x.state === "unavailable") return "The policy could not be named.";
  const n = (x.policies || []).length;
  if (compact) return n || x.securityDefaults ? "named from the tenant's sign-in log." : "from the tenant's sign-in log.";
  if (n === 1) return "Named from the tenant's sign-in log: this Conditional Access policy blocked the sign-in.";
  if (n > 1) return `Named from the tenant's sign-in log: these ${n} Conditional Access policies blocked the sign-in.`;
  if (x.securityDefaults) return "Named from the tenant's sign-in log: security defaults blocked the sign-in.";
  return "From the tenant's sign-in log.";
}

function policyItem(p) {
  const controls = (p.failedControls || []).map((c) => CONTROL_LABELS[c] ? `${CONTROL_LABELS[c]} (${c})` : c);
  const policyState = POLICY_STATES[p.state] ? `${POLICY_STATES[p.state]} (${p.state})` : p.state;
  return el("li", {class: "policy", "data-policy-id": p.id},
    el("p", {class: "policy-name"}, el("strong", {text: p.displayName}),
      p.microsoftManaged ? el("span", {class: "badge managed", title: "Created and switched on by Microsoft, not by " +
        "the tenant's administrators: it cannot be deleted, but users can be excluded from it.", text: "Microsoft-managed"}) : null),
    el("dl", {class: "evidence"},
      el("dt", {text: "Policy ID"}), el("dd", {class: "policy-id", text: p.id}),
      el("dt", {text: "State"}), el("dd", {class: "policy-state", text: policyState}),
      el("dt", {text: "Failed controls"}), el("dd", {class: "failed-controls", text: controls.join("; ") || "Not recorded"})));
}

function policyLine(p) {
  // The history's one-line form of a policy.
  const controls = (p.failedControls || []).map((c) => CONTROL_LABELS[c] || c).join(", ") || "not recorded";
  return el("li", {class: "policy", "data-policy-id": p.id},
    el("strong", {text: p.displayName}), " ",
    p.microsoftManaged ? el("span", {class: "badge managed", text: "Microsoft-managed"}) : null,
    el("span", {class: "sub", text: `State ${POLICY_STATES[p.state] || p.state} · failed: ${controls} · ID `},
      el("span", {class: "mono policy-id", text: p.id})));
}

function explanationDetails(x, {stillPending = false, withChange = false, lookAgain = null} = {}) {
  // The facts under the headline: the named policies (and, in the history, the suggested change), or what is
  // missing to name them, or why the page is still waiting.
  const out = [];
  if (x.state === "pending") {
    out.push(el("p", {class: "hint", text: stillPending
      ? "The service keeps looking for the entry; the validation history shows the policy when it is named."
      : x.reason || "The sign-in log records sign-ins minutes late; the policy is named when its entry arrives."}));
    if (stillPending && lookAgain) {
      out.push(el("div", {class: "row"}, el("button", {type: "button", class: "secondary", id: "explanationRetry",
        text: "Look again", onclick: lookAgain})));
    }
  } else if (x.state === "explained") {
    if ((x.policies || []).length) out.push(el("ul", {class: "policies"}, ...x.policies.map(withChange ? policyLine : policyItem)));
    if (x.securityDefaults) {
      out.push(el("p", {class: "security-defaults", text: "Security defaults are on in this tenant: they require " +
        "multifactor authentication of every user and cannot exclude one."}));
    }
    if (withChange && x.suggestedChange) {
      out.push(el("p", {class: "suggested"}, el("span", {class: "badge suggested", text: "Suggested change"}), " ",
        textWithLinks(x.suggestedChange.text)));
    }
  } else {
    if (x.reason) out.push(el("p", {class: "explanation-reason", text: x.reason}));
    if ((x.missing || []).length) {
      out.push(el("p", {class: "missing-intro", text: "What is missing:"}),
        el("ul", {class: "missing"}, ...x.missing.map((m) => el("li", {}, el("span", {class: "mono", text: m})))));
    }
  }
  return out;
}

function explanationSection(x, recordId) {
  // The outcome's block: a status line (a live region: pending, then the named policy) and its details.
  const box = el("section", {class: "explanation", id: "explanation", "aria-labelledby": "explanationTitle",
                             "data-record-id": recordId || null},
    el("h4", {id: "explanationTitle", text: "Explanation"}),
    el("p", {class: "explanation-status", id: "explanationStatus", role: "status"}),
    el("div", {class: "explanation-details", id: "explanationDetails"}));
  fillExplanation(box, x);
  return box;
}

function fillExplanation(box, x, {stillPending = false} = {}) {
  box.dataset.state = stillPending ? "stillPending" : x.state;
  box.querySelector(".explanation-status").textContent = explanationHeadline(x, stillPending);
  box.querySelector(".explanation-details").replaceChildren(...explanationDetails(x, {stillPending,
    lookAgain: () => lookAgain(box)}));
}

function showSuggestedStep(x) {
  // The suggested change is the first step of the solutions, marked as the one for this account.
  const list = $("solutions");
  if (!list) return;
  const old = $("suggestedChange");
  if (old) old.remove();
  if (x && x.state === "explained" && x.suggestedChange) {
    list.prepend(el("li", {class: "suggested", id: "suggestedChange", "data-kind": x.suggestedChange.kind},
      el("span", {class: "badge suggested", text: "Suggested change for this account"}), " ",
      textWithLinks(x.suggestedChange.text)));
  }
  const empty = !list.children.length;
  list.hidden = empty;
  $("solutionsIntro").hidden = empty;
}

function historyExplanation(x) {
  return el("div", {class: "explanation compact", "data-state": x.state},
    el("p", {class: "explanation-status"}, el("strong", {text: "Explanation: "}), explanationHeadline(x, false, {compact: true})),
    ...explanationDetails(x, {withChange: true}));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function watchExplanation(profile, recordId) {
  // Looks at the profile's validation history until the record's explanation is no longer pending, for at most
  // EXPLANATION_WAIT_MS; a newer test, another profile or another tenant ends the look.
  const watch = {tenant: tenant(), profileId: profile.id, recordId, started: Date.now()};
  state.explanationWatch = watch;
  for (let look = 0; state.explanationWatch === watch; look++) {
    await sleep(EXPLANATION_POLL_MS[Math.min(look, EXPLANATION_POLL_MS.length - 1)]);
    if (state.explanationWatch !== watch) return;
    const res = await api(`/tenants/${watch.tenant}/profiles/${watch.profileId}/validations`);
    if (state.explanationWatch !== watch) return;
    const record = res.status === 200 ? res.body.items.find((r) => r.recordId === recordId) : null;
    const x = record && record.explanation;
    if (x && x.state !== "pending") {
      state.explanationWatch = null;
      const box = $("explanation");
      if (box && box.dataset.recordId === recordId) { fillExplanation(box, x); showSuggestedStep(x); }
      renderHistory(res.body.items);
      return;
    }
    if (Date.now() - watch.started >= EXPLANATION_WAIT_MS) {
      state.explanationWatch = null;
      const box = $("explanation");
      if (box && box.dataset.recordId === recordId) fillExplanation(box, x || {state: "pending"}, {stillPending: true});
      return;
    }
  }
}

function lookAgain(box) {
  const cur = state.current;
  if (!cur || !box.dataset.recordId) return;
  fillExplanation(box, {state: "pending"});
  watchExplanation(cur, box.dataset.recordId);
}

// ---------------------------------------------------------------- app profiles

function renderPermissions(p, outcome) {
  // Required (the workload's manifest), and after a test the granted and missing ones per resource.
  const tbody = document.querySelector("#permissions tbody");
  tbody.replaceChildren();
  if (!p || p.kind !== "app") return;
  const required = p.requiredPermissions || {graph: [], sharepoint: []};
  const granted = outcome && outcome.grantedPermissions;
  const missing = outcome && outcome.missingPermissions;
  const list = (items, cls) => items && items.length
    ? el("ul", {class: "plain"}, ...items.map((x) => el("li", {class: cls, text: x})))
    : el("span", {class: "hint", text: "None"});
  for (const [key, label] of [["graph", "Microsoft Graph"], ["sharepoint", "SharePoint"]]) {
    const notTested = el("span", {class: "hint", text: outcome ? "Not reached" : "Not tested yet"});
    tbody.append(el("tr", {"data-resource": key},
      el("th", {scope: "row", text: label}),
      el("td", {}, list(required[key])),
      el("td", {class: "granted"}, granted ? list(granted[key], "status-passed") : notTested),
      el("td", {class: "missing"}, missing ? list(missing[key], "status-failed") : notTested.cloneNode(true))));
  }
  $("permissionsHint").textContent = outcome
    ? (granted ? "From the roles of the application's tokens in this Validation Test." : "The test did not get a token, so the granted permissions are not known.")
    : "Run the Validation Test to see which permissions the application has.";
}

function showAppProfile(p) {
  // A saved app profile: certificate facts, downloads, rotation, permissions and the consent link.
  const saved = !!p;
  $("certificateDetails").hidden = !saved;
  $("rotateRow").hidden = !saved;
  $("certificateLegend").textContent = saved ? "Rotate the certificate" : "Certificate";
  $("certificateHint").textContent = saved
    ? "Rotate certificate creates a new certificate version; the current one is still accepted until the new one has " +
      "signed in, so upload the new public certificate to the app registration before the next Validation Test."
    : "Key Vault keeps the certificate; its private key never leaves Key Vault.";
  showAppGuidance(p);
  if (!saved) { renderPermissions(null); return; }
  showAppProfileFacts(p);
  renderPermissions(p, null);
}

function showAppGuidance(p) {
  // The service's guidance for an app profile, as it words it; open until the profile has passed a test (and
  // not repeated under a migration's next steps, which are the same steps).
  const steps = (p && p.guidance) || [];
  $("appGuidanceSteps").replaceChildren(...steps.map((s) => el("li", {}, textWithLinks(s))));
  $("appGuidance").hidden = !steps.length || !!state.migration;
  $("appGuidance").open = !(p && p.lastValidation && p.lastValidation.status === "passed");
}

function showAppProfileFacts(p) {
  const cert = p.certificate;
  const facts = cert ? [["Thumbprint", cert.thumbprint.toUpperCase()], ["Valid from", when(cert.notBefore)],
                        ["Valid until", when(cert.notAfter)]] : [];
  if (p.previousCertificate) {
    facts.push(["Previous certificate", p.previousCertificate.thumbprint.toUpperCase() +
      " (still accepted until the new one has signed in; valid until " + when(p.previousCertificate.notAfter) + ")"]);
  }
  $("certificateFacts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
  const cls = expiryClass(cert);
  $("certificateExpiry").className = "cert-" + cls;
  $("certificateExpiry").textContent = !cert ? "" : daysLeftText(cert) + (cls === "expiring"
    ? `: it expires within ${EXPIRY_WARNING_DAYS} days. Rotate it and upload the new one to the app registration.`
    : cls === "expired" ? ": the application cannot sign in with it. Rotate it." : ".");
  $("certificateDownloads").hidden = !!state.migration;  // the migration's next steps carry them
  $("consentLink").href = p.adminConsentUrl || "#";
  $("consentRow").hidden = !p.adminConsentUrl || !!state.migration || !!$("outcomeConsent");
}

async function downloadCertificate(p, der) {
  // Fetched with the key in a header (never in a link), then saved under the service's file name.
  const res = await fetch(p.certificateUrl, {headers: {"x-functions-key": state.key,
                                                       "Accept": der ? "application/pkix-cert" : "application/x-pem-file"}});
  if (!res.ok) { announce("Could not download the certificate (HTTP " + res.status + ")."); return; }
  const m = /filename="?([^";]+)"?/.exec(res.headers.get("Content-Disposition") || "");
  const name = m ? m[1] : `${p.certificate ? p.certificate.thumbprint : "certificate"}.${der ? "cer" : "pem"}`;
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", {href: url, download: name, class: "sr-only"});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  announce("Downloaded " + name + ".");
}

async function rotate() {
  const cur = state.current;
  if (!cur || cur.kind !== "app") return;
  clearFieldErrors(FIELD_IDS, $("rotateErrors"));
  const certificate = await certificateBody();
  if (!certificate) return;
  $("rotate").disabled = true;
  try {
    const res = await api(`/tenants/${tenant()}/profiles/${cur.id}/certificate`, {method: "POST",
      body: JSON.stringify(certificate), headers: {"If-Match": cur.etag}});
    if (res.status !== 200) { showFieldErrors(res, FIELD_IDS, $("rotateErrors")); return; }
    forgetPfx();
    edit(Object.assign(res.body, {etag: res.etag}));
    announce("Certificate rotated: upload the new public certificate to the app registration.");
    $("certificateTitle").textContent = "Certificate (new)";
    await loadProfiles();
  } finally {
    $("rotate").disabled = false;
  }
}

function fillWorkloads(select) {
  const ids = Object.keys(state.texts.workloads || {});
  if (!ids.length) return;
  const chosen = select.value;
  select.replaceChildren(...ids.map((id) => el("option", {value: id, text: id})));
  if (ids.includes(chosen)) select.value = chosen;
}

function openMigrate() {
  const cur = state.current;
  if (!cur || cur.kind === "app") return;
  clearFieldErrors(MIGRATE_FIELD_IDS, $("migrateErrors"));
  $("migrateClientId").value = "";
  fillWorkloads($("migrateWorkload"));
  $("migrateSharePointUrl").value = "";
  $("migrateDialog").showModal();
  $("migrateClientId").focus();
}

async function migrate(event) {
  event.preventDefault();
  const cur = state.current;
  const body = {clientId: $("migrateClientId").value.trim(), workload: $("migrateWorkload").value};
  if ($("migrateSharePointUrl").value.trim()) body.sharePointUrl = $("migrateSharePointUrl").value.trim();
  if (!body.clientId) delete body.clientId;
  $("migrateSubmit").disabled = true;
  let res;
  try {
    res = await api(`/tenants/${tenant()}/profiles/${cur.id}/migrate`, {method: "POST", body: JSON.stringify(body),
      headers: {"If-Match": cur.etag}});
  } finally {
    $("migrateSubmit").disabled = false;
  }
  if (res.status !== 200) { showFieldErrors(res, MIGRATE_FIELD_IDS, $("migrateErrors")); return; }
  $("migrateDialog").close();
  state.migration = res.body;
  edit(Object.assign(res.body.profile, {etag: res.etag}), {keepMigration: true});
  showMigration(res.body);
  announce("Migrated to an app profile. Next steps are shown.");
  loadProfiles();
}

function showMigration(result) {
  // The MigrationResult: what to do in Microsoft Entra ID before the first Validation Test.
  const box = $("migrationResult");
  const p = result.profile;
  const req = result.requiredPermissions || {};
  const perms = [["Microsoft Graph", req.graph], ["SharePoint", req.sharepoint]]
    .filter(([, l]) => l && l.length).map(([r, l]) => `${r}: ${l.join(", ")}`).join("; ");
  // The next steps as the service words them (one item each), then what they need: the certificate to
  // upload, the permissions to grant and the consent link.
  const certificate = Object.assign({}, p, {certificateUrl: result.certificateUrl});
  box.replaceChildren(el("h3", {id: "migrationTitle", text: `${p.name} is now an app profile: next steps`}),
    el("ol", {id: "nextSteps"}, ...(result.nextSteps || []).map((s) => el("li", {}, textWithLinks(s)))),
    el("div", {class: "row", id: "migrationDownloads"},
      el("button", {type: "button", class: "secondary", id: "migrationCer", text: "Download public certificate (.cer)",
                    onclick: () => downloadCertificate(certificate, true)}),
      el("button", {type: "button", class: "secondary", id: "migrationPem", text: "Download public certificate (.pem)",
                    onclick: () => downloadCertificate(certificate, false)})),
    perms ? el("p", {id: "migrationPermissions", text: "Application permissions to grant: " + perms + "."}) : null,
    el("p", {}, el("a", {id: "migrationConsent", href: result.adminConsentUrl, target: "_blank", rel: "noopener noreferrer",
                         text: "Give admin consent in Microsoft Entra ID"})));
  box.hidden = false;
  box.focus();
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

function edit(p, {keepMigration = false} = {}) {
  state.current = p;
  if (!keepMigration) { state.migration = null; $("migrationResult").hidden = true; $("migrationResult").replaceChildren(); }
  const isApp = !!(p && p.kind === "app");
  $("formTitle").textContent = p ? (isApp ? "Edit app profile " : "Edit ") + p.name : "New service account profile";
  $("appNotice").hidden = true;
  // A saved profile keeps its family: MFA and common convert into each other; an app profile stays one
  // (a user profile becomes one through Migrate to app profile).
  const kind = p ? p.kind : "common";
  $("kind" + kind[0].toUpperCase() + kind.slice(1)).checked = true;
  $("kindMfa").disabled = $("kindCommon").disabled = isApp;
  $("kindApp").disabled = !!p && !isApp;
  $("clientId").value = isApp ? (p.clientId || "") : "";
  fillWorkloads($("workload"));
  $("workload").value = isApp && p.workload ? p.workload : "backup";
  $("sharePointUrl").value = isApp ? (p.sharePointUrl || "") : "";
  $("certGenerate").checked = true;
  forgetPfx();
  $("certificateTitle").textContent = "Certificate";
  $("name").value = p ? p.name : "";
  $("description").value = p ? (p.description || "") : "";
  $("mfaEnabled").checked = p ? !!p.mfaEnabled : false;
  $("username").value = p ? (p.username || "") : "";
  $("password").value = "";  // never pre-filled
  const m = p && p.adminCenter ? p.adminCenter.mode : "default";
  (m === "custom" ? $("modeCustom") : $("modeDefault")).checked = true;
  $("url").value = p && p.adminCenter && p.adminCenter.url ? p.adminCenter.url : "";
  $("delete").hidden = !p;
  $("migrate").hidden = !p || isApp;
  clearFieldErrors();
  clearOutcome();
  showProfileLimitations(p);
  refreshForm();
  showAppProfile(isApp ? p : null);
  renderProfiles();
  if (p) loadHistory(p); else $("historySection").hidden = true;
}

async function openProfile(p) {
  const res = await api(`/tenants/${tenant()}/profiles/${p.id}`);
  if (res.status !== 200) { $("listErrors").textContent = problemText(res); return; }
  edit(Object.assign(res.body, {etag: res.etag}));
  $("formTitle").focus();
}

async function save(event) {
  event.preventDefault();
  clearFieldErrors();
  const cur = state.current;
  const body = isAppForm() ? await appFormBody() : formBody();
  if (!body) return;
  $("save").disabled = true;
  let res;
  try {
    res = cur
      ? await api(`/tenants/${tenant()}/profiles/${cur.id}`, {method: "PATCH", body: JSON.stringify(body),
          headers: {"If-Match": cur.etag, "content-type": "application/merge-patch+json"}})
      : await api(`/tenants/${tenant()}/profiles`, {method: "POST", body: JSON.stringify(body)});
  } finally {
    $("save").disabled = false;
  }
  if (isAppForm()) forgetPfx();
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
    if (cur && cur.kind === "app" && appFormChanged(cur)) {
      $("outcome").replaceChildren();
      $("errors").textContent = "Save the changes first: the Validation Test of an app profile tests the saved profile.";
      return;
    }
    const res = cur && (cur.kind === "app" || (!$("password").value && !formChanged(cur)))
      ? await api(`/tenants/${tenant()}/profiles/${cur.id}/validate`, {method: "POST"})
      : await api(`/tenants/${tenant()}/validation-tests`, {method: "POST", body: JSON.stringify(formBody())});
    $("outcome").replaceChildren();
    if (res.status !== 200) { showFieldErrors(res); return; }
    showOutcome(res.body);
    announce(res.body.status === "passed" ? "Validation Test passed." : "Validation Test: " + res.body.message);
    if (cur && res.body.explanation && res.body.explanation.state === "pending") watchExplanation(cur, res.body.recordId);
    if (cur) { await refreshCurrent(cur); loadProfiles(); loadHistory(state.current); }
  } finally {
    $("test").disabled = isAppForm() && !state.current;
  }
}

async function refreshCurrent(p) {
  // A saved profile's test changes its row (last validation, a discovered SharePoint URL, the end of a
  // rotation overlap) and so its ETag: take them, so that Save or Rotate after a test is not refused as stale.
  const untouched = p.kind === "app" ? !appFormChanged(p) : false;
  const res = await api(`/tenants/${tenant()}/profiles/${p.id}`);
  if (res.status !== 200 || !state.current || state.current.id !== p.id) return;
  Object.assign(state.current, res.body, {etag: res.etag});
  if (untouched) {
    $("sharePointUrl").value = state.current.sharePointUrl || "";
    showAppProfileFacts(state.current);
  }
}

function appFormChanged(p) {
  return $("clientId").value.trim().toLowerCase() !== (p.clientId || "") || $("workload").value !== (p.workload || "backup")
    || ($("sharePointUrl").value.trim() || null) !== (p.sharePointUrl || null);
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
  const res = await api(`/tenants/${tenant()}/profiles/${p.id}/validations`);
  if (!state.current || state.current.id !== p.id) return;  // another profile was opened meanwhile
  if (res.status !== 200) {
    tbody.replaceChildren(el("tr", {}, el("td", {colspan: "4", class: "errors", text: problemText(res)})));
    return;
  }
  renderHistory(res.body.items);
  // A test run elsewhere (the CLI, a batch job) may still wait for its explanation: look for it too.
  const waiting = res.body.items.find((r) => r.explanation && r.explanation.state === "pending");
  if (waiting && !state.explanationWatch) watchExplanation(p, waiting.recordId);
}

function renderHistory(items) {
  const tbody = document.querySelector("#history tbody");
  tbody.replaceChildren(...items.map((r) => el("tr", {"data-record-id": r.recordId},
    el("td", {text: when(r.at)}), el("td", {text: r.reason}),
    el("td", {class: "status-" + r.status, text: STATUS_LABELS[r.status] || r.status}),
    el("td", {}, r.messageId ? `${r.messageId}: ${r.message}` : (r.userRoleNote || r.userRole || ""),
      r.explanation ? historyExplanation(r.explanation) : null))));
  if (!items.length) tbody.append(el("tr", {}, el("td", {colspan: "4", class: "hint", text: "Not validated yet."})));
}

// ---------------------------------------------------------------- batch job

async function startJob() {
  const ids = visibleProfiles().map((p) => p.id);
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
  if (res.ok) state.texts = Object.assign({workloads: {}}, await res.json());
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
  $("mfaEnabled").addEventListener("change", () => {
    $($("mfaEnabled").checked ? "kindMfa" : "kindCommon").checked = true;
    refreshForm();
  });
  for (const r of document.querySelectorAll("input[name=kind]")) r.addEventListener("change", refreshForm);
  for (const r of document.querySelectorAll("input[name=certSource]")) r.addEventListener("change", showKind);
  $("workload").addEventListener("change", showKind);
  $("downloadCer").addEventListener("click", () => downloadCertificate(state.current, true));
  $("downloadPem").addEventListener("click", () => downloadCertificate(state.current, false));
  $("rotate").addEventListener("click", rotate);
  $("migrate").addEventListener("click", openMigrate);
  $("migrateForm").addEventListener("submit", migrate);
  $("migrateCancel").addEventListener("click", () => $("migrateDialog").close());
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
