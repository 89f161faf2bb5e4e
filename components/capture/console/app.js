// The operators' console: the admin API (docs/http.md) in a page. No
// framework and no build step: the component serves these files as they are.
//
// The admin token is kept in sessionStorage (this tab only, gone when it closes) and sent
// as the bearer token; it is never put in a URL.

const TOKEN_KEY = "inbox.admin-token";
const PAGE_SIZE = 50;
const REFRESH_MS = 5000;
const STATES = ["received", "processing", "completed", "failed", "operator_required"];
const IN_FLIGHT = ["received", "processing", "failed"];

const $ = (selector) => document.querySelector(selector);

let token = sessionStorage.getItem(TOKEN_KEY);
// The list's place: the cursor of each page shown so far (the first page has none).
let pages = [null];
let listKey = "";
// Each load of the list is numbered: an answer that a later load overtook is dropped.
let listLoads = 0;
let counts = null;

class SignedOut extends Error {}

/** Calls the admin API; a refused token signs the tab out. */
async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    cache: "no-store",
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
  });
  if (response.status === 401 || response.status === 403) {
    const problem = await response.json().catch(() => ({}));
    signOut(response.status === 403
      ? `The admin API is closed: ${problem.detail || "set INBOX_ADMIN_TOKEN"}.`
      : "That admin token was refused.");
    throw new SignedOut();
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `${response.status} ${response.statusText}`);
  }
  return response;
}

function signOut(message = "") {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("#sign-in-error").textContent = message;
  render();
}

function show(id) {
  for (const view of ["#sign-in", "#list-view", "#webhook-view"]) {
    $(view).hidden = view !== id;
  }
  $("#sign-out").hidden = id === "#sign-in";
}

/** The list's filters, from the address (`#/?status=failed&origin=stripe`). */
function filtersFromHash() {
  const query = location.hash.split("?")[1] || "";
  const params = new URLSearchParams(query);
  const filters = {};
  for (const name of ["status", "origin", "type", "search"]) {
    const value = (params.get(name) || "").trim();
    if (value) filters[name] = value;
  }
  return filters;
}

function hashFor(filters) {
  const params = new URLSearchParams(filters);
  const query = params.toString();
  return query ? `#/?${query}` : "#/";
}

function text(value) {
  return value === null || value === undefined ? "" : String(value);
}

/** A time in the viewer's own time zone, the exact instant in its tooltip. */
function time(ms) {
  const element = document.createElement("time");
  if (ms === null || ms === undefined) return element;
  const at = new Date(ms);
  element.dateTime = at.toISOString();
  element.title = at.toISOString();
  element.textContent = at.toLocaleString();
  return element;
}

function cell(row, content, label, className) {
  const td = row.insertCell();
  if (content instanceof Node) td.append(content);
  else td.textContent = text(content);
  if (label) td.dataset.label = label;
  if (className) td.className = className;
  return td;
}

function stateBadge(state) {
  const span = document.createElement("span");
  span.className = `state state-${state}`;
  span.textContent = state;
  return span;
}

function stamp() {
  $("#refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// ---------------------------------------------------------------- the list

async function showList() {
  show("#list-view");
  const filters = filtersFromHash();
  const key = JSON.stringify(filters);
  if (key !== listKey) {
    listKey = key;
    pages = [null];
  }
  const form = $("#filters");
  for (const name of ["status", "origin", "type", "search"]) {
    form.elements[name].value = filters[name] || "";
  }
  await loadList();
}

async function loadList() {
  const load = ++listLoads;
  const filters = filtersFromHash();
  const after = pages[pages.length - 1];
  const filter = new URLSearchParams();
  for (const name of ["origin", "type", "search"]) {
    if (filters[name]) filter.set(name, filters[name]);
  }
  const list = new URLSearchParams(filter);
  if (filters.status) list.set("status", filters.status);
  if (after) list.set("after", after);
  list.set("limit", PAGE_SIZE);
  try {
    const [countsAnswer, listAnswer, destinationsAnswer] = await Promise.all([
      api(`/api/counts?${filter}`),
      api(`/api/webhooks?${list}`),
      api("/api/destinations"),
    ]);
    const answered = await countsAnswer.json();
    const webhooks = await listAnswer.json();
    const destinations = await destinationsAnswer.json();
    if (load !== listLoads) return;
    counts = answered;
    renderDestinations(destinations);
    const next = nextCursor(listAnswer.headers.get("Link"));
    renderCounts(filters);
    renderRows(webhooks);
    $("#older").disabled = !next;
    $("#older").dataset.next = next || "";
    $("#newer").disabled = pages.length === 1;
    $("#page-label").textContent = `page ${pages.length}`;
    $("#list-error").textContent = "";
    stamp();
  } catch (error) {
    if (load === listLoads && !(error instanceof SignedOut)) {
      $("#list-error").textContent = error.message;
    }
  }
}

/** The `after` of the next page, from the list's `Link: <...>; rel="next"`. */
function nextCursor(link) {
  const match = /<([^>]*)>;\s*rel="next"/.exec(link || "");
  if (!match) return null;
  return new URL(match[1], location.origin).searchParams.get("after");
}

function renderCounts(filters) {
  const nav = $("#counts");
  nav.replaceChildren();
  const total = STATES.reduce((sum, state) => sum + (counts[state] || 0), 0);
  const chip = (label, status, n) => {
    const link = document.createElement("a");
    const target = { ...filters };
    if (status) target.status = status;
    else delete target.status;
    link.href = hashFor(target);
    link.textContent = label;
    const b = document.createElement("b");
    b.textContent = n;
    link.append(b);
    link.setAttribute("aria-current", String((filters.status || "") === status));
    link.dataset.state = status || "all";
    nav.append(link);
  };
  chip("all", "", total);
  for (const state of STATES) chip(state, state, counts[state] || 0);
  const dead = counts.operator_required || 0;
  const button = $("#replay-all");
  button.hidden = dead === 0;
  button.textContent = `Replay ${dead} operator_required…`;
}

function renderRows(webhooks) {
  const body = $("#webhooks tbody");
  body.replaceChildren();
  for (const webhook of webhooks) {
    const row = body.insertRow();
    row.dataset.id = webhook.id;
    const link = document.createElement("a");
    link.href = `#/webhooks/${webhook.id}`;
    link.append(time(webhook.received_at));
    link.setAttribute("aria-label", `webhook ${webhook.id}, ${webhook.type}, ${webhook.status}`);
    cell(row, link, "Received");
    cell(row, stateBadge(webhook.status), "Status");
    cell(row, webhook.origin, "Origin");
    cell(row, webhook.type, "Event type");
    cell(row, webhook.retries, "Tries");
    cell(row, webhook.last_error, "Last error", "error-cell");
    row.addEventListener("click", (event) => {
      if (!(event.target instanceof HTMLAnchorElement)) location.hash = link.getAttribute("href");
    });
  }
  $("#webhooks").hidden = webhooks.length === 0;
  $("#empty").hidden = webhooks.length !== 0;
}

/** Each destination with its breaker, and a button to pause or resume it. */
function renderDestinations(destinations) {
  const body = $("#destinations tbody");
  body.replaceChildren();
  for (const destination of destinations) {
    const row = body.insertRow();
    cell(row, destination.name, "Destination");
    cell(row, stateBadge(destination.state), "State");
    cell(row, destination.failures, "Failures");
    cell(row, destination.held, "Held");
    cell(row, destination.opened_at ? time(destination.opened_at) : "", "Opened");
    cell(row, destination.last_error, "Last error", "error-cell");
    const action = destination.state === "paused" ? "resume" : "pause";
    const button = document.createElement("button");
    button.type = "button";
    button.className = action === "pause" ? "secondary" : "";
    button.textContent = action === "pause" ? "Pause" : "Resume";
    button.setAttribute("aria-label", `${button.textContent} ${destination.name}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const name = encodeURIComponent(destination.name);
        await api(`/api/destinations/${name}/${action}`, { method: "POST" });
        $("#list-error").textContent = "";
      } catch (error) {
        if (!(error instanceof SignedOut)) $("#list-error").textContent = error.message;
      }
      loadList();
    });
    cell(row, button, "");
  }
  $("#destinations-card").hidden = destinations.length === 0;
}

/** Replays every operator_required webhook that passes the filter, after a confirmation. */
async function replayAll() {
  const filters = filtersFromHash();
  const described = ["origin", "type", "search"]
    .filter((name) => filters[name])
    .map((name) => `${name} = ${filters[name]}`)
    .join(", ");
  const dead = counts.operator_required || 0;
  const confirmed = await confirm(
    `Replay ${dead} operator_required webhook${dead === 1 ? "" : "s"}` +
      (described ? ` where ${described}` : "") +
      "? Each goes round again with a fresh retry budget.",
  );
  if (!confirmed) return;
  const button = $("#replay-all");
  button.disabled = true;
  const ids = [];
  try {
    const query = new URLSearchParams({ status: "operator_required", limit: "1000" });
    for (const name of ["origin", "type", "search"]) {
      if (filters[name]) query.set(name, filters[name]);
    }
    for (;;) {
      const answer = await api(`/api/webhooks?${query}`);
      ids.push(...(await answer.json()).map((webhook) => webhook.id));
      const next = nextCursor(answer.headers.get("Link"));
      if (!next) break;
      query.set("after", next);
    }
    let replayed = 0;
    const failed = [];
    let done = 0;
    // A few at a time: quick for hundreds, gentle on the store.
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        try {
          await api(`/api/webhooks/${id}/replay`, { method: "POST" });
          replayed += 1;
        } catch (error) {
          if (error instanceof SignedOut) throw error;
          failed.push(`${id}: ${error.message}`);
        }
        done += 1;
        button.textContent = `Replaying ${done}/${ids.length}…`;
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    $("#list-error").textContent = failed.length ? `Not replayed: ${failed.join("; ")}` : "";
    $("#refreshed").textContent = `replayed ${replayed} of ${ids.length}`;
    $("#replay-result-list")?.remove();
    const result = document.createElement("span");
    result.id = "replay-result-list";
    result.setAttribute("role", "status");
    result.textContent = `Replayed ${replayed} of ${ids.length}.`;
    button.after(result);
  } catch (error) {
    if (!(error instanceof SignedOut)) $("#list-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
  await loadList();
}

function confirm(message) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = message;
  // Escape closes without a value: the last answer must not count again.
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// ---------------------------------------------------------------- one webhook

let shownId = null;
let payloadBytes = null;

async function showWebhook(id) {
  show("#webhook-view");
  if (shownId !== id) {
    shownId = id;
    payloadBytes = null;
    $("#replay-result").textContent = "";
    $("#payload").textContent = "";
  }
  await loadWebhook(id);
}

async function loadWebhook(id) {
  try {
    const details = await (await api(`/api/webhooks/${id}`)).json();
    if (shownId !== id) return;
    renderWebhook(details);
    if (!payloadBytes) {
      const bytes = await (await api(`/api/webhooks/${id}/payload`)).arrayBuffer();
      if (shownId !== id) return;
      payloadBytes = bytes;
      renderPayload(bytes);
    }
    $("#webhook-error").textContent = "";
    stamp();
  } catch (error) {
    if (!(error instanceof SignedOut)) $("#webhook-error").textContent = error.message;
  }
}

function renderWebhook(details) {
  $("#webhook-title").textContent = `${details.type} from ${details.origin}`;
  const facts = $("#webhook-facts");
  facts.replaceChildren();
  const fact = (name, value) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = text(value);
    facts.append(dt, dd);
  };
  fact("Status", stateBadge(details.status));
  fact("Id", details.id);
  fact("Idempotency key", details.idempotency_key);
  fact("Received", time(details.received_at));
  if (details.provider_timestamp) fact("Sent by the provider", time(details.provider_timestamp * 1000));
  fact("Updated", time(details.updated_at));
  if (details.next_attempt_at) fact("Next attempt", time(details.next_attempt_at));
  fact("Attempts this round", details.retries);
  // A completed webhook keeps the error of its last failure: history, not a problem now.
  if (details.last_error && details.status !== "completed") fact("Last error", details.last_error);
  $("#webhook-view").dataset.status = details.status;
  $("#replay-one").hidden = details.status !== "operator_required";

  const attempts = $("#attempts tbody");
  attempts.replaceChildren();
  details.attempts.forEach((attempt, index) => {
    const row = attempts.insertRow();
    cell(row, index + 1, "#");
    // A replay gives a fresh budget: its attempts count from 1 again.
    cell(row, attempt.number, "Try");
    cell(row, time(attempt.started_at), "Started");
    cell(row, `${Math.max(0, attempt.ended_at - attempt.started_at)} ms`, "Took");
    cell(row, stateBadge(attempt.state), "Ended in");
    cell(row, attempt.error, "Error", "error-cell");
  });
  $("#attempts").hidden = details.attempts.length === 0;
  $("#no-attempts").hidden = details.attempts.length !== 0;
  const letters = $("#dead-letters tbody");
  letters.replaceChildren();
  for (const letter of details.dead_letters) {
    const row = letters.insertRow();
    cell(row, time(letter.at), "When");
    cell(row, letter.attempts, "After attempts");
    cell(row, letter.reason, "Reason", "error-cell");
  }
  $("#dead-letters").hidden = details.dead_letters.length === 0;
  $("#no-dead-letters").hidden = details.dead_letters.length !== 0;
  const headers = $("#headers");
  headers.replaceChildren();
  for (const [name, value] of details.headers) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    headers.append(dt, dd);
  }
}

function renderPayload(bytes) {
  const raw = new TextDecoder().decode(bytes);
  let shown = raw;
  try {
    shown = JSON.stringify(JSON.parse(raw), null, 2);
  } catch {
    // Not JSON after all: shown as it is.
  }
  $("#payload").textContent = shown;
}

function download() {
  if (!payloadBytes) return;
  const url = URL.createObjectURL(new Blob([payloadBytes], { type: "application/json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = `${shownId}.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function replayOne() {
  const id = shownId;
  const confirmed = await confirm(`Replay ${id}? It goes round again with a fresh retry budget.`);
  if (!confirmed) return;
  try {
    const answer = await (await api(`/api/webhooks/${id}/replay`, { method: "POST" })).json();
    $("#replay-result").textContent = `Replayed: now ${answer.status}.`;
  } catch (error) {
    if (!(error instanceof SignedOut)) $("#replay-result").textContent = `Not replayed: ${error.message}`;
  }
  await loadWebhook(id);
}

// ---------------------------------------------------------------- wiring

function render() {
  if (!token) {
    show("#sign-in");
    $("#refreshed").textContent = "";
    $("#token").focus();
    return;
  }
  const match = /^#\/webhooks\/([0-9a-f-]{36})$/.exec(location.hash);
  if (match) showWebhook(match[1]);
  else showList();
}

/** Reloads what is shown: the list when asked to, a webhook while it is on its way. */
function tick() {
  if (!token || document.visibilityState !== "visible") return;
  if (!$("#list-view").hidden && $("#auto-refresh").checked) loadList();
  if (!$("#webhook-view").hidden && IN_FLIGHT.includes($("#webhook-view").dataset.status)) {
    loadWebhook(shownId);
  }
}

$("#sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("#token").value.trim();
  $("#token").value = "";
  try {
    await api("/api/counts");
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#sign-in-error").textContent = "";
    render();
  } catch (error) {
    if (!(error instanceof SignedOut)) $("#sign-in-error").textContent = error.message;
  }
});

$("#sign-out").addEventListener("click", () => signOut());

$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(event.target);
  const filters = {};
  for (const [name, value] of data) {
    if (String(value).trim()) filters[name] = String(value).trim();
  }
  const hash = hashFor(filters);
  if (location.hash === hash) loadList();
  else location.hash = hash;
});

$("#filters").addEventListener("reset", () => {
  setTimeout(() => {
    location.hash = "#/";
  });
});

// Each pager button is disabled until the page it asked for is shown: a second click
// cannot skip a page.
$("#older").addEventListener("click", () => {
  const next = $("#older").dataset.next;
  if (!next) return;
  $("#older").disabled = true;
  pages.push(next);
  loadList();
});

$("#newer").addEventListener("click", () => {
  $("#newer").disabled = true;
  if (pages.length > 1) pages.pop();
  loadList();
});

$("#replay-all").addEventListener("click", replayAll);
$("#replay-one").addEventListener("click", replayOne);
$("#download").addEventListener("click", download);

document.addEventListener("keydown", (event) => {
  // Not while typing in a field (a checkbox or a button takes no text).
  const typing =
    event.target instanceof Element &&
    event.target.matches("input:not([type=checkbox]):not([type=radio]), select, textarea");
  if (event.key === "/" && !typing && !$("#list-view").hidden) {
    event.preventDefault();
    $("#filters").elements.search.focus();
  }
});

window.addEventListener("hashchange", render);
setInterval(tick, REFRESH_MS);
render();
