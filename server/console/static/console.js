// The façade console: a request builder, the response, the façade's trace of it, the
// emulator's fault controls and the capability view. Vanilla JavaScript, no build step.
// Everything that came from a server is written with textContent or DOM nodes, never
// innerHTML: a response body is data, not markup.

const API = "/_console/api";

const KINDS = {
  access: "Access",
  cache: "Cache",
  nhs: "NHS call",
  single_flight: "Single-flight",
  rate_limit: "Rate limit",
  circuit: "Circuit",
  retry: "Retry",
  conversion: "Conversion",
  response: "Response",
};

// Reason phrases: HTTP/2 and some servers send none, and a bare number reads poorly.
const REASONS = {
  200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
  401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 410: "Gone",
  412: "Precondition Failed", 422: "Unprocessable Entity", 429: "Too Many Requests",
  500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};
const statusText = (status, given = "") => `${status} ${given || REASONS[status] || ""}`.trim();

// The session headers NHS England's sandbox accepts for user-restricted APIs (README's curl lines).
const SANDBOX_SESSION = { urid: "555254242106", org: "A83008", jobrole: "R8000" };

const state = {
  config: null,
  adminToken: null, // { value, expiresAt }: the console's own token for traces and faults
  builderTokens: new Map(), // token fields (JSON) -> { value, expiresAt }
  types: [], // resource types from /metadata
};

const $ = (id) => document.getElementById(id);

/** Create an element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Announce through the aria-live status region. */
function announce(message, { error = false } = {}) {
  const region = $("status");
  region.textContent = message;
  region.classList.toggle("error", error);
}

let uniqueCounter = 0;
const uniqueId = (prefix) => `${prefix}-${++uniqueCounter}`;

// ---------------------------------------------------------------- HTTP helpers

async function getJSON(path, token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}${await errorText(response)}`);
  return response.json();
}

async function postJSON(path, body, token) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}${await errorText(response)}`);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

async function errorText(response) {
  try {
    const text = await response.text();
    if (!text) return "";
    try {
      const body = JSON.parse(text);
      if (body.error) return `: ${body.error}`;
      const issue = body.issue && body.issue[0];
      if (issue) return `: ${issue.diagnostics || issue.details?.text || issue.code}`;
    } catch {
      /* not JSON */
    }
    return `: ${text.slice(0, 200)}`;
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------- tokens

const isSandbox = () => state.config?.mode !== "live";

/** Mint a development token (sandbox) for `fields`, reusing one that is still fresh. */
async function mintToken(fields, cache) {
  const key = JSON.stringify(fields);
  const held = cache.get(key);
  if (held && held.expiresAt - Date.now() > 30_000) return held.value;
  const minted = await postJSON(`${API}/token`, fields);
  const value = minted.access_token;
  cache.set(key, { value, expiresAt: Date.now() + (minted.expires_in || 300) * 1000 });
  return value;
}

const adminCache = new Map();

/** The token the console uses for its own API (traces and faults). */
async function adminToken() {
  if (!isSandbox()) return $("tok-paste").value.trim() || null;
  if (!state.config?.dev_tokens) return null;
  return mintToken({ scope: "user/*.rs", role: "admin", patient: null, purpose: "TREAT" }, adminCache);
}

/** The token for the request builder's request, from its token fields or the paste box. */
async function builderToken() {
  if (!isSandbox() || !state.config?.dev_tokens) return $("tok-paste").value.trim() || null;
  const fields = {
    scope: $("tok-scope").value.trim(),
    role: $("tok-role").value,
    patient: $("tok-patient").value.trim() || null,
    purpose: $("tok-purpose").value || null,
  };
  return mintToken(fields, state.builderTokens);
}

// ---------------------------------------------------------------- key/value rows

function addRow(containerId, kind, key = "", value = "") {
  const container = $(containerId);
  const keyId = uniqueId(`${kind}-name`);
  const valueId = uniqueId(`${kind}-value`);
  const noun = kind === "param" ? "Parameter" : "Header";
  const row = el(
    "div",
    { className: "kv-row" },
    el(
      "div",
      { className: "field" },
      el("label", { for: keyId }, `${noun} name`),
      el("input", { id: keyId, type: "text", className: "kv-key", autocomplete: "off", spellcheck: "false" }),
    ),
    el(
      "div",
      { className: "field" },
      el("label", { for: valueId }, `${noun} value`),
      el("input", { id: valueId, type: "text", className: "kv-value", autocomplete: "off", spellcheck: "false" }),
    ),
    el("button", { type: "button", className: "secondary danger", "aria-label": `Remove this ${noun.toLowerCase()}` }, "Remove"),
  );
  row.querySelector(".kv-key").value = key;
  row.querySelector(".kv-value").value = value;
  row.querySelector("button").addEventListener("click", () => {
    row.remove();
    updatePreview();
  });
  container.append(row);
  updatePreview();
  return row;
}

function rows(containerId) {
  return [...$(containerId).querySelectorAll(".kv-row")]
    .map((row) => [row.querySelector(".kv-key").value.trim(), row.querySelector(".kv-value").value])
    .filter(([key]) => key);
}

// ---------------------------------------------------------------- the builder

function ensureTypeOption(type) {
  const select = $("req-type");
  if (type && ![...select.options].some((o) => o.value === type)) select.append(el("option", { value: type }, type));
}

/** A path segment, percent-encoded except for what FHIR paths use as is ($operation, urn:). */
const segment = (text) => encodeURIComponent(text).replace(/%24/g, "$").replace(/%3A/gi, ":");

/** A URL as a person reads it: percent-escapes decoded (display only, never sent). */
function readable(url) {
  try {
    return decodeURIComponent(url.replace(/\+/g, " "));
  } catch {
    return url;
  }
}

/** The request the builder describes: { method, url, headers, body }. */
function builtRequest() {
  const method = $("req-method").value;
  const type = $("req-type").value;
  const id = $("req-id").value.trim();
  const extra = $("req-extra").value.trim().replace(/^\/+/, "");
  let path = type ? `/${segment(type)}` : "";
  if (id) path += `/${segment(id)}`;
  if (extra) path += `/${extra.split("/").map(segment).join("/")}`;
  path = path || "/";
  const params = new URLSearchParams();
  for (const [key, value] of rows("params")) params.append(key, value);

  const headers = { Accept: $("hdr-accept").value };
  const optional = {
    Prefer: $("hdr-prefer").value,
    "Cache-Control": $("hdr-cache").value,
    "X-Purpose-Of-Use": $("hdr-purpose").value,
    "NHSD-Session-URID": $("hdr-urid").value.trim(),
    "NHSD-Organization-UUID": $("hdr-org").value.trim(),
    "NHSD-Session-JobRole": $("hdr-jobrole").value.trim(),
  };
  for (const [name, value] of Object.entries(optional)) if (value) headers[name] = value;
  for (const [name, value] of rows("extra-headers")) headers[name] = value;

  let url = path;
  let body = null;
  const query = params.toString();
  if (method === "POST" && query) {
    body = query;
    headers["Content-Type"] = "application/x-www-form-urlencoded";
  } else if (query) {
    url += `?${query}`;
  }
  return { method, url, headers, body };
}

function updatePreview() {
  const { method, url } = builtRequest();
  $("req-preview").textContent = `${method} ${readable(url)}`;
}

/** Fill the builder from a scenario-style request and token; missing fields are cleared. */
function fillBuilder(request = {}, token = null) {
  const segments = (request.path || "/").split("?")[0].split("/").filter(Boolean).map(decodeURIComponent);
  const [type = "", id = "", ...rest] = segments;
  ensureTypeOption(type);
  $("req-method").value = (request.method || "GET").toUpperCase() === "POST" ? "POST" : "GET";
  $("req-type").value = type;
  $("req-id").value = id;
  $("req-extra").value = rest.join("/");
  $("params").replaceChildren();
  for (const [key, value] of queryPairs(request.query)) addRow("params", "param", key, value);

  for (const fieldId of ["hdr-prefer", "hdr-cache", "hdr-purpose", "hdr-urid", "hdr-org", "hdr-jobrole"]) $(fieldId).value = "";
  $("hdr-accept").value = "application/fhir+json";
  $("extra-headers").replaceChildren();
  const known = {
    accept: "hdr-accept",
    prefer: "hdr-prefer",
    "cache-control": "hdr-cache",
    "x-purpose-of-use": "hdr-purpose",
    "nhsd-session-urid": "hdr-urid",
    "nhsd-organization-uuid": "hdr-org",
    "nhsd-session-jobrole": "hdr-jobrole",
  };
  for (const [name, value] of Object.entries(request.headers || {})) {
    const target = known[name.toLowerCase()];
    if (target && $(target).tagName === "SELECT") selectValue($(target), value);
    else if (target) $(target).value = value;
    else addRow("extra-headers", "header", name, value);
  }
  const hidden = ["hdr-urid", "hdr-org", "hdr-jobrole"].some((fieldId) => $(fieldId).value) || rows("extra-headers").length;
  if (hidden) $("more-headers").open = true;
  if (token) {
    if (token.scope) $("tok-scope").value = token.scope;
    if (token.role) selectValue($("tok-role"), token.role);
    $("tok-patient").value = token.patient || "";
    if (token.purpose) selectValue($("tok-purpose"), token.purpose);
  }
  updatePreview();
}

/** Query as [key, value] pairs: an object (values may be lists) or a query string. */
function queryPairs(query) {
  if (!query) return [];
  if (typeof query === "string") return [...new URLSearchParams(query)];
  const pairs = [];
  for (const [key, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) pairs.push([key, String(item)]);
  }
  return pairs;
}

/** Select `value`, adding it as an option when the list does not have it. */
function selectValue(select, value) {
  if (![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, value));
  select.value = value;
}

// ---------------------------------------------------------------- sending

let sending = false;

async function send() {
  if (sending) return;
  sending = true;
  const button = $("send");
  button.disabled = true;
  const request = builtRequest();
  announce(`Sending ${request.method} ${readable(request.url)}…`);
  try {
    let token = null;
    try {
      token = await builderToken();
    } catch (error) {
      announce(`Could not get a token: ${error.message}`, { error: true });
      return;
    }
    const headers = { ...request.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    const started = performance.now();
    let response;
    try {
      response = await fetch(request.url, { method: request.method, headers, body: request.body, cache: "no-store" });
    } catch (error) {
      showNetworkError(request, error);
      announce(`The request failed: ${error.message}`, { error: true });
      return;
    }
    const text = await response.text();
    const elapsed = Math.round(performance.now() - started);
    showResponse(request, response, text, elapsed);
    // Take the reader to the answer (the status region also announces it).
    $("response-heading").focus();
    const requestId = response.headers.get("X-Request-ID");
    announce(`${request.method} ${readable(request.url)}: ${statusText(response.status, response.statusText)} in ${elapsed} ms`);
    if (requestId) await showTrace(requestId);
    else $("trace").replaceChildren(el("p", { className: "empty" }, "The response carried no X-Request-ID."));
    refreshFaults();
    refreshRecent();
  } finally {
    sending = false;
    button.disabled = false;
  }
}

function statusClass(status) {
  if (!status) return "status-err";
  return `status-${String(status)[0]}xx`;
}

function showNetworkError(request, error) {
  $("response").replaceChildren(
    el("p", { className: "status-line" }, el("span", { className: "status-badge status-err" }, "Network error"), error.message),
  );
}

function showResponse(request, response, text, elapsed) {
  const panel = $("response");
  const headerList = el("dl", { className: "headers-list" });
  for (const [name, value] of response.headers) headerList.append(el("dt", {}, name), el("dd", {}, value));
  const contentType = response.headers.get("Content-Type") || "";
  let body;
  if (!text) {
    body = el("p", { className: "empty" }, "(no body)");
  } else if (/json/i.test(contentType)) {
    try {
      body = jsonTree(JSON.parse(text));
    } catch {
      body = el("pre", { className: "raw", tabindex: "0", "aria-label": "Response body" }, text);
    }
  } else {
    body = el("pre", { className: "raw", tabindex: "0", "aria-label": "Response body (raw)" }, text);
  }
  panel.replaceChildren(
    el(
      "div",
      { className: "status-line" },
      el("span", { id: "response-status", className: `status-badge ${statusClass(response.status)}` }, statusText(response.status, response.statusText)),
      el("code", {}, `${request.method} ${readable(request.url)}`),
      el("span", {}, `${elapsed} ms`),
    ),
    el("details", { className: "response-headers" }, el("summary", {}, `Headers (${headerList.childElementCount / 2})`), headerList),
    el("h3", {}, "Body"),
    body,
  );
}

// ---------------------------------------------------------------- the JSON tree

/** A collapsible tree of a JSON value, built from DOM nodes (text only). */
function jsonTree(value) {
  const root = el("div", { className: "json-tree", id: "json-tree", tabindex: "0", "aria-label": "Response body as a tree" });
  root.append(jsonNode(null, value, 0));
  return root;
}

function jsonNode(key, value, depth) {
  let keyPart = [];
  if (typeof key === "number") keyPart = [el("span", { className: "json-index" }, String(key)), ": "];
  else if (key !== null) keyPart = [el("span", { className: "json-key" }, JSON.stringify(key)), ": "];
  if (value !== null && typeof value === "object") {
    const isArray = Array.isArray(value);
    const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
    const label = isArray ? `[${entries.length} item${entries.length === 1 ? "" : "s"}]` : `{${entries.length} key${entries.length === 1 ? "" : "s"}}`;
    const hint = !isArray && typeof value.resourceType === "string" ? ` ${value.resourceType}` : "";
    const list = el("ul", {});
    for (const [childKey, childValue] of entries) list.append(el("li", {}, jsonNode(childKey, childValue, depth + 1)));
    const details = el("details", { open: depth < 4 }, el("summary", {}, ...keyPart, el("span", { className: "json-size" }, label + hint)), list);
    return details;
  }
  let cls = "json-null";
  let shown = "null";
  if (typeof value === "string") {
    cls = "json-string";
    shown = JSON.stringify(value);
  } else if (typeof value === "number") {
    cls = "json-number";
    shown = String(value);
  } else if (typeof value === "boolean") {
    cls = "json-boolean";
    shown = String(value);
  }
  return el("span", { className: "json-leaf" }, ...keyPart, el("span", { className: cls }, shown));
}

// ---------------------------------------------------------------- the trace

async function fetchTrace(requestId) {
  const token = await adminToken();
  // The trace is recorded as the response finishes: a first 404 may only mean "not yet".
  let lastError = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await getJSON(`${API}/traces/${encodeURIComponent(requestId)}`, token);
    } catch (error) {
      lastError = error;
      if (!/HTTP 404/.test(error.message)) break;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
  throw lastError;
}

async function showTrace(requestId) {
  const panel = $("trace");
  panel.setAttribute("aria-busy", "true");
  try {
    const trace = await fetchTrace(requestId);
    renderTrace(trace);
  } catch (error) {
    panel.replaceChildren(el("p", { className: "empty" }, `No trace for ${requestId}: ${error.message}`));
  } finally {
    panel.removeAttribute("aria-busy");
  }
}

function kindClass(kind) {
  return KINDS[kind] ? `kind-${kind}` : "kind-other";
}

function renderTrace(trace) {
  const events = trace.events || [];
  const total = Math.max(
    Number(trace.duration_ms) || 0,
    ...events.map((e) => (Number(e.at_ms) || 0) + (Number(e.duration_ms) || 0)),
    1,
  );
  const list = el("ol", { className: "waterfall", id: "waterfall", "aria-label": "What the façade did, in order" });
  for (const event of events) {
    const at = Number(event.at_ms) || 0;
    const duration = event.duration_ms === null || event.duration_ms === undefined ? null : Number(event.duration_ms);
    const bar = el("span", { className: `bar ${kindClass(event.kind)}` });
    // CSSOM, not a style attribute: the page's CSP forbids inline styles.
    bar.style.left = `${Math.min(100, (at / total) * 100)}%`;
    bar.style.width = duration === null ? "3px" : `${Math.max(0.4, (duration / total) * 100)}%`;
    const timing = duration === null ? `at ${fmt(at)} ms` : `at ${fmt(at)} ms, took ${fmt(duration)} ms`;
    const detailEntries = Object.entries(event.detail || {});
    const row = el(
      "li",
      { className: "event", dataset: { kind: event.kind || "" } },
      el("span", { className: `kind ${kindClass(event.kind)}` }, KINDS[event.kind] || event.kind || "event"),
      el("span", { className: "label" }, event.label || ""),
      el("span", { className: "track", "aria-hidden": "true" }, bar),
    );
    if (detailEntries.length) {
      const dl = el("dl", {});
      for (const [name, value] of detailEntries) {
        dl.append(el("dt", {}, name), el("dd", {}, typeof value === "object" && value !== null ? JSON.stringify(value) : String(value)));
      }
      row.append(el("details", {}, el("summary", {}, el("span", { className: "timing" }, timing), " · details"), dl));
    } else {
      row.append(el("span", { className: "timing only" }, timing));
    }
    list.append(row);
  }
  const summary = el(
    "p",
    { className: "trace-summary" },
    el("span", { id: "trace-status", className: `status-badge ${statusClass(trace.status)}` }, `Final status ${trace.status ? statusText(trace.status) : "?"}`),
    el("code", {}, `${trace.method || ""} ${trace.path || ""}`),
    el("span", {}, `${fmt(Number(trace.duration_ms) || 0)} ms`),
    el("span", { className: "mono" }, `X-Request-ID ${trace.request_id}`),
  );
  const notes = [];
  if (trace.redacted) notes.push(el("p", { className: "hint" }, "Patient identifiers and tokens are redacted (live mode)."));
  if (trace.dropped_events) notes.push(el("p", { className: "hint" }, `${trace.dropped_events} further events were not kept.`));
  const requestHeaders = Object.entries(trace.request_headers || {});
  let headers = null;
  if (requestHeaders.length) {
    const dl = el("dl", { className: "headers-list" });
    for (const [name, value] of requestHeaders) dl.append(el("dt", {}, name), el("dd", {}, String(value)));
    headers = el("details", {}, el("summary", {}, `Request headers as the façade saw them (${requestHeaders.length})`), dl);
  }
  $("trace").replaceChildren(
    summary,
    ...notes,
    headers || "",
    events.length ? list : el("p", { className: "empty" }, "No events were recorded for this request."),
  );
}

async function refreshRecent() {
  const list = $("recent-list");
  try {
    const token = await adminToken();
    if (!token) {
      list.replaceChildren(el("li", { className: "empty" }, "Paste a token with a console role (auditor or admin) to see traces."));
      return;
    }
    const { traces = [] } = await getJSON(`${API}/traces?limit=20`, token);
    list.replaceChildren(
      ...traces.map((t) => {
        const query = typeof t.query === "string" ? t.query : new URLSearchParams(queryPairs(t.query)).toString();
        const line = readable(`${t.method} ${t.path}${query ? `?${query.replace(/^\?/, "")}` : ""}`);
        return el(
          "li",
          {},
          el(
            "button",
            { type: "button", className: "link", onclick: () => showTrace(t.request_id) },
            `${line} → ${statusText(t.status)} (${fmt(Number(t.duration_ms) || 0)} ms)`,
          ),
        );
      }),
    );
    if (!traces.length) list.append(el("li", { className: "empty" }, "No requests traced yet."));
  } catch (error) {
    list.replaceChildren(el("li", { className: "empty" }, `Unavailable: ${error.message}`));
  }
}

const fmt = (ms) => (ms >= 100 ? Math.round(ms) : Math.round(ms * 10) / 10).toString();

function renderLegend() {
  $("trace-legend").replaceChildren(...Object.entries(KINDS).map(([kind, label]) => el("li", { className: `kind-${kind}` }, label)));
}

// ---------------------------------------------------------------- faults

function updateFaultFields() {
  const kind = $("fault-kind").value;
  for (const field of document.querySelectorAll("#fault-form [data-for-kinds]")) {
    const shown = field.dataset.forKinds.split(" ").includes(kind);
    field.hidden = !shown;
    for (const input of field.querySelectorAll("input")) input.disabled = !shown;
  }
}

async function applyFault(event) {
  event.preventDefault();
  const kind = $("fault-kind").value;
  const fault = { api: $("fault-api").value, kind, times: Number($("fault-times").value || 1) };
  if (kind === "status") fault.status = Number($("fault-status").value || 503);
  if (kind === "latency") fault.delay = Number($("fault-delay").value || 1);
  if (kind === "timeout" && $("fault-timeout-delay").value !== "") fault.delay = Number($("fault-timeout-delay").value);
  if ((kind === "status" || kind === "rate_limit") && $("fault-retry-after").value !== "") {
    fault.retry_after = Number($("fault-retry-after").value);
  }
  try {
    await postJSON(`${API}/faults`, fault, await adminToken());
    announce(`Fault applied to ${fault.api}: ${describeFault(fault)}`);
  } catch (error) {
    announce(`Could not apply the fault: ${error.message}`, { error: true });
  }
  await refreshFaults();
}

async function clearFaults() {
  try {
    await postJSON(`${API}/faults/clear`, {}, await adminToken());
    announce("All faults cleared.");
  } catch (error) {
    announce(`Could not clear the faults: ${error.message}`, { error: true });
  }
  await refreshFaults();
}

const FAULT_KINDS = {
  status: "HTTP status",
  rate_limit: "rate limited",
  latency: "latency",
  timeout: "timeout",
  reset: "connection reset",
  malformed: "malformed body",
  wrong_type: "wrong resource type",
};

function describeFault(fault) {
  const parts = [FAULT_KINDS[fault.kind] || fault.kind];
  if (fault.status !== undefined && fault.status !== null && fault.kind !== "wrong_type") parts.push(`HTTP ${fault.status}`);
  if (fault.delay) parts.push(`delay ${fault.delay} s`);
  if (fault.retry_after !== undefined && fault.retry_after !== null) parts.push(`Retry-After ${fault.retry_after}`);
  if (fault.times !== undefined) parts.push(fault.times < 0 ? "every request" : `${fault.times} time${fault.times === 1 ? "" : "s"} left`);
  return parts.join(", ");
}

async function refreshFaults() {
  if (!state.config?.fault_control) return;
  const list = $("active-faults");
  try {
    const body = await getJSON(`${API}/faults`, await adminToken());
    const faults = Array.isArray(body) ? body : body.faults || [];
    list.replaceChildren(
      ...(faults.length
        ? faults.map((f) => el("li", {}, el("strong", {}, f.api || "?"), `: ${describeFault(f)}`))
        : [el("li", { className: "empty" }, "None")]),
    );
  } catch (error) {
    list.replaceChildren(el("li", { className: "empty" }, `Unavailable: ${error.message}`));
  }
}

// ---------------------------------------------------------------- scenarios

async function loadScenarios() {
  const list = $("scenario-list");
  if (!isSandbox()) {
    list.replaceChildren(el("li", { className: "empty" }, "Scenarios use the emulator's test patients: sandbox mode only."));
    list.removeAttribute("aria-busy");
    return;
  }
  try {
    const { scenarios = [] } = await getJSON(`${API}/scenarios`);
    list.replaceChildren(
      ...scenarios.map((scenario) => {
        const titleId = uniqueId("scenario-title");
        const request = scenario.request || {};
        const query = queryPairs(request.query);
        const shown = readable(`${request.method || "GET"} ${request.path || ""}${query.length ? `?${new URLSearchParams(query)}` : ""}`);
        return el(
          "li",
          { className: "scenario", dataset: { scenario: scenario.id } },
          el("h3", { id: titleId }, scenario.title || scenario.id),
          scenario.description ? el("p", {}, scenario.description) : null,
          el("p", { className: "meta" }, el("code", {}, shown)),
          el(
            "button",
            { type: "button", className: "run-scenario", "aria-describedby": titleId, onclick: () => runScenario(scenario) },
            "Run",
          ),
          " ",
          el("button", { type: "button", className: "secondary", "aria-describedby": titleId, onclick: () => fillScenario(scenario) }, "Fill only"),
        );
      }),
    );
    if (!scenarios.length) list.append(el("li", { className: "empty" }, "No scenarios."));
  } catch (error) {
    list.replaceChildren(el("li", { className: "empty" }, `Scenarios unavailable: ${error.message}`));
  } finally {
    list.removeAttribute("aria-busy");
  }
}

function fillScenario(scenario) {
  fillBuilder(scenario.request, scenario.token);
  announce(`Builder filled: ${scenario.title || scenario.id}`);
}

async function runScenario(scenario) {
  fillBuilder(scenario.request, scenario.token);
  await send();
}

// ---------------------------------------------------------------- capability

async function loadCapability() {
  const container = $("capability-list");
  try {
    const statement = await getJSON("/metadata?_format=json");
    const resources = (statement.rest || []).flatMap((rest) => rest.resource || []);
    state.types = resources.map((r) => r.type);
    const select = $("req-type");
    const current = select.value;
    select.replaceChildren(...state.types.map((type) => el("option", { value: type }, type)));
    if (current) ensureTypeOption(current);
    select.value = current && state.types.includes(current) ? current : state.types.includes("Patient") ? "Patient" : state.types[0] || "";
    container.replaceChildren(...resources.map(capabilityEntry));
    updatePreview();
  } catch (error) {
    container.replaceChildren(el("p", { className: "empty" }, `Capability unavailable: ${error.message}`));
  }
}

function capabilityEntry(resource) {
  const type = resource.type;
  const interactions = (resource.interaction || []).map((i) => i.code);
  const operations = (resource.operation || []).map((o) => `$${o.name}`);
  const params = resource.searchParam || [];
  const list = el("ul", {});
  for (const param of params) {
    list.append(
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            className: "link fill-param",
            dataset: { type, param: param.name },
            "aria-label": `Search ${type} by ${param.name}`,
            onclick: () => {
              fillBuilder({ method: "GET", path: `/${type}` }, null);
              addRow("params", "param", param.name, "").querySelector(".kv-value").focus();
              announce(`Builder filled: search ${type} by ${param.name}`);
            },
          },
          param.name,
        ),
        ` (${param.type})`,
        param.documentation ? el("span", { className: "hint" }, ` ${param.documentation}`) : null,
      ),
    );
  }
  return el(
    "details",
    { dataset: { type } },
    el("summary", {}, type),
    el("p", { className: "interactions" }, `Interactions: ${[...interactions, ...operations].join(", ") || "none"}`),
    el(
      "button",
      {
        type: "button",
        className: "fill-type",
        dataset: { type },
        onclick: () => {
          fillBuilder({ method: "GET", path: `/${type}` }, null);
          $("req-id").focus();
          announce(`Builder filled: ${type}`);
        },
      },
      `Use ${type}`,
    ),
    params.length ? el("h3", {}, "Search parameters") : null,
    params.length ? list : null,
  );
}

// ---------------------------------------------------------------- start

function fillSelect(select, values, preferred) {
  select.replaceChildren(...values.map((value) => el("option", { value }, value)));
  if (values.includes(preferred)) select.value = preferred;
}

async function loadConfig() {
  state.config = await getJSON(`${API}/config`);
  const config = state.config;
  $("mode").textContent = config.mode === "live" ? "live" : "sandbox";
  const devTokens = isSandbox() && config.dev_tokens;
  $("token-dev").hidden = !devTokens;
  $("token-live").hidden = devTokens;
  for (const input of $("token-dev").querySelectorAll("input, select")) input.disabled = !devTokens;
  fillSelect($("tok-role"), config.roles || [], "clinician");
  fillSelect($("tok-purpose"), config.purposes || [], "TREAT");
  $("hdr-purpose").append(...(config.purposes || []).map((p) => el("option", { value: p }, p)));
  fillSelect($("fault-api"), config.apis || [], "pds");
  const faultsOn = Boolean(config.fault_control) && (config.apis || []).length > 0;
  for (const control of $("fault-form").querySelectorAll("input, select, button")) control.disabled = !faultsOn;
  if (!faultsOn) $("active-faults").replaceChildren(el("li", { className: "empty" }, "Fault control is off (live mode)."));
}

function wire() {
  $("builder").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("builder").addEventListener("input", updatePreview);
  $("builder").addEventListener("change", updatePreview);
  $("add-param").addEventListener("click", () => addRow("params", "param").querySelector(".kv-key").focus());
  $("add-header").addEventListener("click", () => addRow("extra-headers", "header").querySelector(".kv-key").focus());
  $("fill-session").addEventListener("click", () => {
    $("more-headers").open = true;
    $("hdr-urid").value = SANDBOX_SESSION.urid;
    $("hdr-org").value = SANDBOX_SESSION.org;
    $("hdr-jobrole").value = SANDBOX_SESSION.jobrole;
    updatePreview();
  });
  $("fault-form").addEventListener("submit", applyFault);
  $("fault-clear").addEventListener("click", clearFaults);
  $("recent-refresh").addEventListener("click", refreshRecent);
  $("tok-paste").addEventListener("change", refreshRecent);
  $("fault-kind").addEventListener("change", updateFaultFields);
  updateFaultFields();
  renderLegend();
}

async function start() {
  wire();
  try {
    await loadConfig();
  } catch (error) {
    announce(`The console API is unavailable: ${error.message}`, { error: true });
    return;
  }
  await Promise.all([loadCapability(), loadScenarios(), refreshFaults(), refreshRecent()]);
  fillBuilder({ method: "GET", path: "/Patient/9000000009" }, { role: "clinician", patient: "9000000009", purpose: "TREAT" });
  document.body.dataset.ready = "true";
  announce("Ready. Pick a scenario, or build a request and press Send.");
}

start();
