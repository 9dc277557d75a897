// The approval inbox served by `smithers serve`: one page for `/` (the approvals waiting
// for a decision) and `/runs/<runId>` (one run). Vanilla ES module, no dependencies, no
// build step. Every piece of user text (titles, prompts, notes, outputs, inputs) reaches
// the DOM through textContent / DOM building, never through innerHTML.
//
// Live updates: one EventSource on /v1/events; any event re-fetches the current view
// (debounced). Cards are keyed by runId/nodeId/iteration and kept across re-renders, so
// text typed into a card's forms survives them.

import { CONTRACT } from "./contract.js";

// --------------------------------------------------------------------------- DOM helpers

/**
 * Builds an element. `props`: `class`, `text` (textContent), `on<event>` handlers,
 * `dataset`, boolean/property values (`hidden`, `disabled`, `checked`, `value`, …) and
 * string attributes (`aria-*`, `for`, `href`, …). Children: nodes, strings (as text),
 * arrays, null/false (skipped).
 */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = String(v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      else if (typeof v === "boolean") {
        if (k in el) el[k] = v;
        else el.setAttribute(k, "");
      }
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uidCounter = 0;
/** A page-unique id for label/for and aria wiring. */
const uid = (prefix) => `${prefix}-${++uidCounter}`;

/** `<time>` showing a local date-time, the ISO value in its title. */
function timeEl(iso, { relative = false } = {}) {
  if (!iso) return h("span", { class: "muted", text: "—" });
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h("span", { text: String(iso) });
  return h("time", { datetime: d.toISOString(), title: d.toISOString(), text: relative ? `${fmtAgo(d)} (${fmtDate(d)})` : fmtDate(d) });
}

/** A time given as ms since the epoch. */
const timeElMs = (ms) => timeEl(new Date(ms).toISOString());

function fmtDate(d) {
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** 45s, 3m 12s, 1h 04m, 2d 3h. */
function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 24) return `${hrs}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

const fmtAgo = (d) => `${fmtDuration(Date.now() - d.getTime())} ago`;

const pretty = (v) => {
  if (typeof v === "string") return v;
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
};

/** Coloured status badge; the tone follows the state's meaning. */
/** A quorum gate: how many approvals it needs, from whom, who may veto, and the votes so far. */
function quorumEl(q, votes) {
  const who = [`${q.approvals} approval${q.approvals === 1 ? "" : "s"}`];
  if (q.from?.length) who.push(`from ${q.from.join(", ")}`);
  if (q.veto?.length) who.push(`veto: ${q.veto.join(", ")}`);
  return h(
    "section",
    { class: "quorum", "aria-label": "quorum" },
    h("h4", { text: `Quorum: ${who.join("; ")}` }),
    votes.length
      ? h(
          "ul",
          { class: "votes" },
          votes.map((v) =>
            h("li", { class: "vote", "data-voter": v.voter }, badge(v.verdict === "approve" ? "approved" : "denied", "badge-small"), v.veto ? " veto" : "", " by ", h("strong", { text: v.voter }), " · ", timeEl(v.at), v.note ? h("blockquote", { class: "note", text: v.note }) : null),
          ),
        )
      : h("p", { class: "muted small", text: "No votes yet." }),
  );
}

function badge(status, extraClass = "") {
  const s = String(status ?? "unknown");
  return h("span", { class: `badge tone-${toneOf(s)} ${extraClass}`.trim(), text: s });
}

function toneOf(s) {
  switch (s) {
    case "finished":
    case "approved":
      return "ok";
    case "running":
    case "in-progress":
      return "info";
    case "waiting-approval":
    case "requested":
    case "pushed-back":
      return "warn";
    case "failed":
    case "rejected":
    case "denied":
      return "bad";
    default:
      return "neutral";
  }
}

/** The `NAME=value` chips of an inputs object, or null when empty. */
function inputsEl(inputs) {
  const entries = Object.entries(inputs ?? {});
  if (entries.length === 0) return null;
  return h(
    "ul",
    { class: "chips", "aria-label": "inputs" },
    entries.map(([k, v]) => h("li", { class: "chip" }, h("span", { class: "chip-k", text: k }), "=", h("span", { class: "chip-v", text: String(v) }))),
  );
}

/** A collapsible `<pre>`; `key` keeps its open state across re-renders of a card body. */
function preDetails(summary, text, { open = false, key, cls = "" } = {}) {
  return h(
    "details",
    { class: `output ${cls}`.trim(), open, dataset: key ? { k: key } : undefined },
    h("summary", { text: summary }),
    h("pre", { class: "pre", tabindex: "0", text }),
  );
}

// --------------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * One JSON request to the server. Same-origin cookie auth; writes carry the CSRF header
 * the server requires. Throws ApiError (`code` from the server's error body, or
 * NETWORK_ERROR / HTTP_<status>).
 */
async function api(method, path, body, { token } = {}) {
  const headers = { Accept: "application/json" };
  // A token given here (a sign-in link's, before it is accepted) is sent for this request only.
  if (token) headers.Authorization = `Bearer ${token}`;
  if (method !== "GET" && method !== "HEAD") headers["X-Smithers-Inbox"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "NETWORK_ERROR", `Could not reach the server (${e?.message ?? e}).`);
  }
  let json = null;
  const text = await res.text();
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const err = json?.error;
    throw new ApiError(
      res.status,
      err?.code ?? `HTTP_${res.status}`,
      err?.message ?? (text.slice(0, 300) || res.statusText || "Request failed"),
      err?.details,
    );
  }
  return json ?? {};
}

const enc = encodeURIComponent;
const runHref = (runId) => `/runs/${enc(runId)}`;
const keyOf = (a) => `${a.runId}/${a.nodeId}/${a.iteration}`;
/** A Dagu DAG's run: shown as Dagu's Approval tab shows it (Retry, iteration, Reject run). */
const isDagu = (a) => /\.ya?ml$/i.test(a.workflowPath ?? "");

// --------------------------------------------------------------------------- app state

const state = {
  me: null, // { user, scopes }
  view: null, // the mounted view: { el, refresh(), destroy(), onEvent?(e) }
};

const $main = () => document.getElementById("main");

/** Re-fetches the current view ~150 ms after the last call; one fetch at a time. */
const refresher = {
  timer: null,
  running: false,
  again: false,
  schedule(delay = 150) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delay);
  },
  async run() {
    if (this.running) {
      this.again = true;
      return;
    }
    const view = state.view;
    if (!view) return;
    this.running = true;
    try {
      await view.refresh();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) signedOut("Your session ended. Sign in again.");
      else view.showError?.(e);
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule(0);
      }
    }
  },
};

// --------------------------------------------------------------------------- live updates

const EVENT_TYPES = [
  "RunStarted", "RunStatusChanged", "RunFinished", "RunFailed", "RunCancelled",
  "NodeStarted", "NodeFinished", "NodeFailed", "NodeRetrying", "NodeSkipped", "NodeCancelled",
  "NodeAbandoned", "NodeWaitingApproval", "NodePushedBack", "NodeRejected",
  "ApprovalRequested", "ApprovalGranted", "ApprovalDenied", "ApprovalRejected", "ApprovalPushedBack", "ApprovalVoted",
  "ApprovalCancelled", "LoopIteration", "LoopFinished", "HandlerStarted", "HandlerFinished", "HandlerFailed",
  "WaitMailSent", "WaitMailFailed",
  "message",
];

const live = {
  es: null,
  retryMs: 1000,
  retryTimer: null,
  hadError: false,
  start() {
    this.stop();
    if (typeof EventSource === "undefined") return setLive("off", "no live updates");
    setLive("connecting", "connecting…");
    const es = new EventSource("/v1/events");
    this.es = es;
    es.onopen = () => {
      if (this.es !== es) return;
      setLive("live", "live");
      this.retryMs = 1000;
      // Events may have been missed while disconnected.
      if (this.hadError) refresher.schedule(0);
      this.hadError = false;
    };
    es.onerror = () => {
      if (this.es !== es) return;
      this.hadError = true;
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. 401): check the session, then try again.
        setLive("reconnecting", "reconnecting…");
        es.close();
        this.es = null;
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.recheck(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 30_000);
      } else {
        setLive("reconnecting", "reconnecting…");
      }
    };
    const onEvent = (msg) => {
      if (this.es !== es) return;
      let event = null;
      try {
        event = JSON.parse(msg.data);
      } catch {
        event = null;
      }
      if (state.view?.wants && event && !state.view.wants(event)) return;
      refresher.schedule(150);
    };
    for (const t of EVENT_TYPES) es.addEventListener(t, onEvent);
  },
  async recheck() {
    try {
      await api("GET", "/v1/me");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return signedOut("Your session ended. Sign in again.");
    }
    if (state.me) this.start();
  },
  stop() {
    clearTimeout(this.retryTimer);
    if (this.es) this.es.close();
    this.es = null;
    this.hadError = false;
    setLive("off", "offline");
  },
};

function setLive(kind, text) {
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = kind;
  el.querySelector(".live-text").textContent = text;
  el.title = kind === "live" ? "Receiving live updates" : text;
}

// Waiting times tick every second.
setInterval(() => state.view?.tick?.(Date.now()), 1000);

// --------------------------------------------------------------------------- auth

function renderWho() {
  const who = document.getElementById("who");
  who.replaceChildren();
  if (!state.me) {
    who.hidden = true;
    return;
  }
  const scopes = state.me.scopes ?? [];
  who.append(
    h("span", { class: "who-user" }, "Signed in as ", h("strong", { text: state.me.user ?? "?" })),
    scopes.length ? h("span", { class: "who-scopes", title: "scopes" }, scopes.map((s) => h("span", { class: "scope", text: s }))) : null,
    h("button", { type: "button", class: "btn btn-small", onclick: signOut, text: "Sign out" }),
  );
  who.hidden = false;
}

async function signOut() {
  try {
    await api("DELETE", "/v1/session");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      alert(`Sign out failed: ${e.code}: ${e.message}`);
      return;
    }
  }
  signedOut("Signed out.");
}

function signedOut(message) {
  state.me = null;
  live.stop();
  unmountView();
  renderWho();
  renderSignIn(message);
}

function renderSignIn(message) {
  document.title = "Sign in — Smithers";
  const tokenId = uid("token");
  const errId = uid("err");
  const input = h("input", {
    id: tokenId,
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": errId,
  });
  const err = h("p", { id: errId, class: "form-error", role: "alert", hidden: true });
  const btn = h("button", { type: "submit", class: "btn btn-primary", text: "Sign in" });
  const form = h(
    "form",
    { class: "signin card", novalidate: true },
    h("h1", { text: "Sign in" }),
    message ? h("p", { class: "muted", text: message }) : null,
    h("p", null, "Paste the access token that ", h("code", { text: "smithers serve" }), " printed, or open the sign-in link it printed."),
    h("div", { class: "field" }, h("label", { for: tokenId, text: "Access token" }), input),
    err,
    h("div", { class: "form-actions" }, btn),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      showFormError(err, "Enter your access token.");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    btn.disabled = true;
    input.removeAttribute("aria-invalid");
    showFormError(err, null);
    try {
      await api("POST", "/v1/session", { token });
      await start();
    } catch (e) {
      showFormError(err, errorText(e));
      input.setAttribute("aria-invalid", "true");
      input.select();
    } finally {
      btn.disabled = false;
    }
  });
  $main().replaceChildren(form);
  input.focus();
}

function showFormError(el, text) {
  el.textContent = text ?? "";
  el.hidden = !text;
}

function errorText(e) {
  if (e instanceof ApiError) return `${e.code}: ${e.message}`;
  return String(e?.message ?? e);
}

/** A token handed over in the URL (`#token=…` or `?token=…`), removed from the address bar. */
function takeUrlToken() {
  const url = new URL(location.href);
  const hash = new URLSearchParams(url.hash.replace(/^#/, ""));
  const token = hash.get("token") ?? url.searchParams.get("token");
  if (!token) return null;
  url.searchParams.delete("token");
  hash.delete("token");
  const rest = hash.toString();
  url.hash = rest ? `#${rest}` : "";
  history.replaceState(null, "", url.pathname + url.search + url.hash);
  return token;
}

// --------------------------------------------------------------------------- routing

function unmountView() {
  state.view?.destroy?.();
  state.view = null;
}

function route() {
  unmountView();
  const m = /^\/runs\/(.+)$/.exec(location.pathname);
  const main = $main();
  if (m) {
    let runId;
    try {
      runId = decodeURIComponent(m[1]);
    } catch {
      runId = m[1];
    }
    state.view = new RunView(runId);
  } else {
    state.view = new InboxView();
  }
  main.replaceChildren(state.view.el);
  refresher.schedule(0);
}

function navigate(href) {
  history.pushState(null, "", href);
  route();
  $main().focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

document.addEventListener("click", (ev) => {
  const a = ev.target instanceof Element ? ev.target.closest("a[data-nav]") : null;
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  ev.preventDefault();
  if (!state.me) return;
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => {
  if (state.me) route();
});

// --------------------------------------------------------------------------- approval card

const LINGER_DONE_MS = 8000;

/**
 * One approval waiting for a decision, with its actions. Kept by key across refreshes:
 * the body is rebuilt only when the approval changed, the forms only when the gate's
 * fields changed, so typed text and open panels survive live updates.
 */
class ApprovalCard {
  constructor(a, env) {
    this.env = env; // { showRunLink, onDecided() }
    this.key = keyOf(a);
    this.busy = false;
    this.done = false; // decided from this card (or found decided): actions hidden
    this.doneAt = 0;
    this.doneRound = 0;
    this.sticky = false; // stays until dismissed (a conflict the user must see)
    this.titleId = uid("card-title");
    this.el = h("article", { class: "card approval", "aria-labelledby": this.titleId, dataset: { key: this.key } });
    this.body = h("div", { class: "card-body" });
    this.actions = h("div", { class: "card-actions" });
    this.result = h("div", { class: "result", role: "status", "aria-live": "polite", hidden: true });
    this.el.append(this.body, this.actions, this.result);
  }

  /** Takes the latest data for this approval; `fetchedAt` anchors the waiting clock. */
  update(a, fetchedAt) {
    if (this.done && !this.busy && (a.round ?? 1) > this.doneRound && a.status === "requested") {
      // Pushed back from here, and the step is waiting again in its next round.
      this.revive(a);
    }
    this.a = a;
    this.clock = { waitingMs: Number(a.waitingMs ?? 0), at: fetchedAt, requestedAtMs: a.requestedAtMs };
    const { waitingMs: _w, ...stable } = a;
    const fp = JSON.stringify(stable);
    if (fp !== this.fp) {
      this.fp = fp;
      this.renderBody();
    }
    const sig = JSON.stringify([a.kind, a.mode, a.input ?? [], a.required ?? [], (a.options ?? []).map((o) => [o.key, o.label])]);
    if (sig !== this.sig) {
      this.sig = sig;
      this.renderActions();
    }
    this.tick(Date.now());
  }

  tick(now) {
    if (!this.waitEl || !this.clock) return;
    const ms = this.done ? this.waitedMs ?? this.clock.waitingMs : this.clock.waitingMs + (now - this.clock.at);
    this.waitEl.textContent = `${this.done ? "waited" : "waiting"} ${fmtDuration(ms)}`;
  }

  renderBody() {
    const a = this.a;
    const open = new Map([...this.body.querySelectorAll("details[data-k]")].map((d) => [d.dataset.k, d.open]));
    const isReview = a.kind === "review";
    const title = a.title || a.prompt || a.nodeId;
    const texts = [];
    for (const t of [a.summary, a.prompt]) if (t && t !== title && !texts.includes(t)) texts.push(t);

    this.waitEl = h("span", { class: "waiting-clock" });
    const meta = h(
      "div",
      { class: "card-meta" },
      h("span", { class: "wf", title: "workflow", text: a.workflowName ?? "?" }),
      h("span", { class: "sep", "aria-hidden": "true", text: "·" }),
      (typeof this.env.showRunLink === "function" ? this.env.showRunLink(a) : this.env.showRunLink !== false)
        ? h("a", { class: "mono", href: runHref(a.runId), "data-nav": true, title: "open the run", text: a.runId })
        : h("span", { class: "mono", text: a.runId }),
      h("span", { class: "sep", "aria-hidden": "true", text: "·" }),
      h("span", { class: "mono node", title: "node" }, a.nodeId, a.iteration ? h("span", { class: "muted", text: ` #${a.iteration}` }) : null),
      h("span", { class: `badge kind-${isReview ? "review" : "gate"}`, text: isReview ? "review" : "gate" }),
      a.mode === "select" || a.mode === "rank" || a.mode === "human" ? h("span", { class: "badge tone-neutral", text: a.mode === "human" ? "answer" : a.mode }) : null,
      isDagu(a)
        ? a.approvalIteration > 0
          ? h("span", { class: "badge tone-neutral iteration", title: "times pushed back", text: `iteration ${a.approvalIteration}` })
          : null
        : isReview || (a.round ?? 1) > 1
          ? h("span", { class: "badge tone-neutral round", text: `round ${a.round ?? 1}` })
          : null,
    );

    const waitLine = h(
      "p",
      { class: "waiting" },
      this.waitEl,
      h("span", { class: "muted" }, " · requested ", timeEl(a.requestedAt)),
      a.runStatus ? h("span", { class: "muted" }, " · run ", badge(a.runStatus, "badge-small")) : null,
    );

    const restrict = [];
    if (a.allowedUsers?.length) restrict.push(`users: ${a.allowedUsers.join(", ")}`);
    if (a.allowedScopes?.length) restrict.push(`scopes: ${a.allowedScopes.join(", ")}`);

    // A deadline: when the gate decides itself, and how (onTimeout, as system:timeout).
    const TIMEOUT_VERB = { deny: "denied", approve: "approved", fail: "denied, failing the run" };
    const deadline =
      a.status === "requested" && a.deadlineAtMs != null
        ? h(
            "p",
            { class: "deadline small" },
            "Deadline ",
            timeElMs(a.deadlineAtMs),
            h("span", { class: "muted", text: `: if nobody decides by then, it is ${TIMEOUT_VERB[a.onTimeout] ?? "denied"} by system:timeout.` }),
          )
        : null;
    const escalated = a.escalated?.length
      ? h("p", { class: "escalated muted small", text: `Escalated ${a.escalated.length === 1 ? "once" : `${a.escalated.length} times`}: who may decide was widened.` })
      : null;

    const parts = [
      meta,
      h("h3", { id: this.titleId, class: "card-title", text: title }),
      texts.map((t) => h("p", { class: "card-text", text: t })),
      waitLine,
      deadline,
      restrict.length ? h("p", { class: "muted small restrict", text: `Only ${restrict.join("; ")} may decide now.` }) : null,
      escalated,
    ];

    if (a.options?.length) {
      parts.push(
        h(
          "div",
          { class: "options-view" },
          h("h4", { text: a.mode === "rank" ? "Options to rank" : "Options" }),
          h(
            "ul",
            { class: "options-list" },
            a.options.map((o) =>
              h("li", null, h("strong", { text: o.label ?? o.key }), " ", h("code", { text: o.key }), o.summary ? h("span", { class: "muted", text: ` — ${o.summary}` }) : null),
            ),
          ),
        ),
      );
    }
    if (a.metadata !== null && a.metadata !== undefined && !(typeof a.metadata === "object" && Object.keys(a.metadata).length === 0)) {
      parts.push(preDetails("Metadata", pretty(a.metadata), { key: "metadata", open: open.get("metadata") ?? false }));
    }
    // A Dagu step's output is its stdout, shown inline as Dagu does.
    const hasOutput = isReview && a.output !== null && a.output !== undefined && !(isDagu(a) && a.stdoutTail);
    if (hasOutput) {
      const text = pretty(a.output);
      const small = text.split("\n").length <= 24;
      parts.push(preDetails(`Output${a.round ? ` of round ${a.round}` : ""}`, text, { key: "output", open: open.get("output") ?? small, cls: "json" }));
    }
    if (a.stdoutTail) {
      parts.push(preDetails(isDagu(a) ? "Step output" : "stdout (tail)", a.stdoutTail, { key: "stdout", open: open.get("stdout") ?? !hasOutput, cls: "stdout" }));
    }
    if (a.history?.length) parts.push(this.historyEl(a.history, open));
    if (a.quorum) parts.push(quorumEl(a.quorum, a.votes ?? []));

    this.body.replaceChildren(...parts.flat().filter(Boolean));
  }

  historyEl(history, open) {
    return h(
      "section",
      { class: "history", "aria-label": "earlier rounds" },
      h("h4", { text: `Earlier rounds (${history.length})` }),
      h(
        "ol",
        { class: "history-list" },
        history.map((r, i) => {
          const k = `hist-${r.iteration ?? i}`;
          return h(
            "li",
            { class: "history-item" },
            h(
              "div",
              { class: "history-head" },
              h("strong", { text: `Round ${r.iteration ?? i + 1}` }),
              " ",
              badge(r.status, "badge-small"),
              r.by ? h("span", null, " by ", h("strong", { text: r.by })) : null,
              r.at ? h("span", { class: "muted" }, " · ", timeEl(r.at)) : null,
            ),
            inputsEl(r.inputs),
            r.note ? h("blockquote", { class: "note", text: r.note }) : null,
            r.output !== null && r.output !== undefined ? preDetails(`Output of round ${r.iteration ?? i + 1}`, pretty(r.output), { key: k, open: open.get(k) ?? false, cls: "json" }) : null,
          );
        }),
      ),
    );
  }

  // ---- actions

  renderActions() {
    const a = this.a;
    const isReview = a.kind === "review";
    this.panels = {};
    this.buttons = {};
    const bar = h("div", { class: "action-bar" });
    const add = (name, label, cls, build) => {
      const panelId = uid("panel");
      const btn = h("button", { type: "button", class: `btn ${cls}`, "aria-expanded": "false", "aria-controls": panelId, text: label });
      const panel = h("div", { id: panelId, class: "panel", role: "group", "aria-label": label, hidden: true, dataset: { action: name } }, build());
      btn.addEventListener("click", () => this.toggle(name));
      // Escape closes the form (its text stays) and gives the focus back to its button.
      panel.addEventListener("keydown", (ev) => {
        if (ev.key !== "Escape" || this.busy) return;
        ev.preventDefault();
        this.toggle(null);
        btn.focus();
      });
      this.buttons[name] = btn;
      this.panels[name] = panel;
      bar.append(btn);
    };
    const dagu = isDagu(a);
    add("approve", "Approve", "btn-approve", () => this.approveForm());
    if (isReview) add("pushback", dagu ? "Retry" : "Push back", "btn-pushback", () => this.pushBackForm(dagu));
    if (isReview && dagu) add("deny", "Reject run", "btn-deny", () => this.rejectRunForm());
    else add("deny", isReview ? "Reject" : "Deny", "btn-deny", () => this.denyForm(isReview));
    this.actions.replaceChildren(bar, ...Object.values(this.panels));
    if (this.done) this.actions.hidden = true;
  }

  toggle(name, force) {
    for (const [n, panel] of Object.entries(this.panels)) {
      const show = n === name ? (force ?? panel.hidden) : false;
      panel.hidden = !show;
      this.buttons[n].setAttribute("aria-expanded", String(show));
      this.buttons[n].classList.toggle("active", show);
      if (show && n === name) panel.querySelector("input:not([type=radio]), textarea, input[type=radio], button[type=submit]")?.focus();
    }
  }

  /**
   * Text fields for the gate's declared inputs; required ones marked `*` when the action
   * needs them (an approve; the core does not require them to push a step back).
   */
  inputFields({ markRequired = true } = {}) {
    const a = this.a;
    const required = new Set(markRequired ? (a.required ?? []) : []);
    const fields = (a.input ?? []).map((name) => {
      const id = uid("in");
      const isReq = required.has(name);
      return {
        name,
        required: isReq,
        input: h("input", { id, name, type: "text", autocomplete: "off", spellcheck: "false", "aria-required": isReq ? "true" : null }),
        label: h("label", { for: id }, h("span", { class: "mono", text: name }), isReq ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null, isReq ? h("span", { class: "sr-only", text: " (required)" }) : null),
      };
    });
    const el = fields.length
      ? h(
          "fieldset",
          { class: "inputs" },
          h("legend", null, "Inputs", required.size ? h("span", { class: "muted small", text: " (* required)" }) : null),
          fields.map((f) => h("div", { class: "field" }, f.label, f.input)),
        )
      : null;
    return { el, fields };
  }

  noteField(label, name = "note", { required = false } = {}) {
    const id = uid(name);
    const input = h("textarea", { id, name, rows: "2", "aria-required": required ? "true" : null });
    return {
      input,
      el: h(
        "div",
        { class: "field" },
        h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null, required ? h("span", { class: "sr-only", text: " (required)" }) : null),
        input,
      ),
    };
  }

  formShell(submitLabel, submitClass, children, onSubmit) {
    const err = h("p", { class: "form-error", role: "alert", hidden: true });
    const submit = h("button", { type: "submit", class: `btn ${submitClass}`, text: submitLabel });
    const cancel = h("button", {
      type: "button",
      class: "btn btn-ghost",
      text: "Cancel",
      onclick: (ev) => {
        const panel = ev.currentTarget.closest(".panel");
        this.toggle(null);
        if (panel) this.actions.querySelector(`[aria-controls="${panel.id}"]`)?.focus();
      },
    });
    const form = h("form", { class: "action-form", novalidate: true }, children, err, h("div", { class: "form-actions" }, submit, cancel));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (this.busy) return;
      showFormError(err, null);
      onSubmit(err);
    });
    return form;
  }

  /** Blank required fields: marks them, shows the error inline, focuses the first. */
  checkRequired(fields, err) {
    const missing = [];
    for (const f of fields) {
      const blank = f.input.value.trim() === "";
      if (f.required && blank) {
        missing.push(f);
        f.input.setAttribute("aria-invalid", "true");
      } else {
        f.input.removeAttribute("aria-invalid");
      }
    }
    if (missing.length === 0) return true;
    const names = missing.map((f) => f.name).join(", ");
    showFormError(err, `Required: ${names}. Fill ${missing.length === 1 ? "it" : "them"} in first.`);
    missing[0].input.focus();
    return false;
  }

  static collect(fields) {
    const inputs = {};
    for (const f of fields) if (f.input.value.trim() !== "") inputs[f.name] = f.input.value;
    return inputs;
  }

  approveForm() {
    const a = this.a;
    if (a.mode === "human") return this.answerForm();
    const { el: inputsFs, fields } = this.inputFields();
    const note = this.noteField("Note (optional)");
    let choice = null;
    if (a.mode === "select" && a.options?.length) choice = this.selectField(a.options);
    if (a.mode === "rank" && a.options?.length) choice = this.rankField(a.options);
    return this.formShell("Approve", "btn-approve", [choice?.el, inputsFs, note.el], (err) => {
      let decision;
      if (choice) {
        const value = choice.value();
        if (value === null) {
          showFormError(err, "Choose an option first.");
          choice.focus();
          return;
        }
        decision = a.mode === "rank" ? { ranked: value } : { selected: value };
        if (note.input.value.trim()) decision.notes = note.input.value;
      }
      if (!this.checkRequired(fields, err)) return;
      const body = { iteration: a.iteration, inputs: ApprovalCard.collect(fields) };
      if (note.input.value.trim()) body.note = note.input.value;
      if (decision) body.decision = decision;
      this.send("approve", body);
    });
  }

  /**
   * A <HumanTask>: one field per property of its output schema (a checkbox for booleans, a
   * list for string enums, JSON for objects and arrays); the answer is sent as `decision`,
   * and the core checks it against the schema.
   */
  answerForm() {
    const a = this.a;
    const props = a.schema?.properties ?? {};
    const required = new Set(a.schema?.required ?? []);
    const fields = Object.entries(props).map(([name, p]) => answerField(name, p, required.has(name)));
    const fs = h(
      "fieldset",
      { class: "inputs" },
      h("legend", null, "Answer", required.size ? h("span", { class: "muted small", text: " (* required)" }) : null),
      fields.map((f) => h("div", { class: f.checkbox ? "field field-check" : "field" }, f.label, f.input)),
    );
    const hint = a.maxAttempts ? h("p", { class: "muted small", text: `An answer that does not fit is refused and counts as one of ${a.maxAttempts} attempts.` }) : null;
    return this.formShell("Submit answer", "btn-approve", [fs, hint], (err) => {
      const answer = {};
      for (const f of fields) {
        const value = f.read();
        if (value === undefined) continue;
        if (value instanceof Error) {
          f.input.setAttribute("aria-invalid", "true");
          showFormError(err, `${f.name}: ${value.message}`);
          f.input.focus();
          return;
        }
        f.input.removeAttribute("aria-invalid");
        answer[f.name] = value;
      }
      const missing = fields.filter((f) => f.required && !(f.name in answer));
      if (missing.length) {
        for (const f of missing) f.input.setAttribute("aria-invalid", "true");
        showFormError(err, `Required: ${missing.map((f) => f.name).join(", ")}.`);
        missing[0].input.focus();
        return;
      }
      this.send("approve", { iteration: a.iteration, decision: answer });
    });
  }

  selectField(options) {
    const group = uid("sel");
    const radios = options.map((o) => {
      const id = uid("opt");
      const input = h("input", { type: "radio", id, name: group, value: o.key });
      return {
        input,
        el: h(
          "div",
          { class: "radio" },
          input,
          h("label", { for: id }, h("strong", { text: o.label ?? o.key }), " ", h("code", { text: o.key }), o.summary ? h("span", { class: "muted", text: ` — ${o.summary}` }) : null),
        ),
      };
    });
    return {
      el: h("fieldset", { class: "choice" }, h("legend", null, "Choose one", h("span", { class: "req", "aria-hidden": "true", text: " *" })), radios.map((r) => r.el)),
      value: () => radios.find((r) => r.input.checked)?.input.value ?? null,
      focus: () => radios[0]?.input.focus(),
    };
  }

  rankField(options) {
    let order = options.map((o) => o.key);
    const byKey = new Map(options.map((o) => [o.key, o]));
    const list = h("ol", { class: "rank-list" });
    const render = (focusKey, focusDir) => {
      list.replaceChildren(
        ...order.map((key, i) => {
          const o = byKey.get(key);
          const name = o.label ?? key;
          const up = h("button", { type: "button", class: "btn btn-icon", "aria-label": `Move ${name} up`, disabled: i === 0, text: "↑" });
          const down = h("button", { type: "button", class: "btn btn-icon", "aria-label": `Move ${name} down`, disabled: i === order.length - 1, text: "↓" });
          up.addEventListener("click", () => move(i, -1));
          down.addEventListener("click", () => move(i, 1));
          const li = h("li", { class: "rank-item", dataset: { key } }, h("span", { class: "rank-label" }, h("strong", { text: name }), " ", h("code", { text: key })), h("span", { class: "rank-buttons" }, up, down));
          if (key === focusKey) queueMicrotask(() => (focusDir < 0 && !up.disabled ? up : !down.disabled ? down : up).focus());
          return li;
        }),
      );
    };
    const move = (i, dir) => {
      const j = i + dir;
      if (j < 0 || j >= order.length) return;
      const key = order[i];
      order = order.slice();
      [order[i], order[j]] = [order[j], order[i]];
      render(key, dir);
    };
    render();
    return {
      el: h("fieldset", { class: "choice" }, h("legend", { text: "Order the options (first is best)" }), list),
      value: () => order.slice(),
      focus: () => list.querySelector("button:not([disabled])")?.focus(),
    };
  }

  pushBackForm(dagu = false) {
    const a = this.a;
    const { el: inputsFs, fields } = this.inputFields({ markRequired: false });
    this.pushBackFields = fields;
    const note = this.noteField("Note (optional): what should change?");
    this.pushBackNote = note.input;
    const hint = dagu
      ? "The step and the steps after it run again with these inputs; it comes back here for review."
      : "The step runs again with these inputs and comes back for review in its next round.";
    return this.formShell(dagu ? "Retry" : "Push back", "btn-pushback", [h("p", { class: "muted small", text: hint }), inputsFs, note.el], () => {
      const body = { iteration: a.iteration, inputs: ApprovalCard.collect(fields) };
      if (note.input.value.trim()) body.note = note.input.value;
      this.send("push-back", body);
    });
  }

  denyForm(isReview) {
    const a = this.a;
    const reason = this.noteField(isReview ? "Reason" : "Reason (optional)", "reason", { required: isReview });
    const hint = isReview
      ? "Rejecting fails the run: the steps after this one never run."
      : a.onDeny === "continue" || a.onDeny === "skip"
        ? "Denying records the decision and the run goes on."
        : "Denying fails the run.";
    return this.formShell(isReview ? "Reject" : "Deny", "btn-deny", [h("p", { class: "muted small", text: hint }), reason.el], (err) => {
      const text = reason.input.value;
      if (isReview) {
        if (text.trim() === "") {
          reason.input.setAttribute("aria-invalid", "true");
          showFormError(err, "Give a reason for the rejection.");
          reason.input.focus();
          return;
        }
        reason.input.removeAttribute("aria-invalid");
        this.send("reject", { iteration: a.iteration, reason: text });
      } else {
        const body = { iteration: a.iteration };
        if (text.trim()) {
          body.reason = text;
          body.note = text;
        }
        this.send("deny", body);
      }
    });
  }

  /** Dagu's Reject: the whole run ends rejected; the reason is optional. */
  rejectRunForm() {
    const a = this.a;
    const reason = this.noteField("Reason (optional)", "reason");
    const hint = "Rejecting ends the whole run as rejected: every waiting step is withdrawn, the steps after them never run, and the failure handler runs.";
    return this.formShell("Reject run", "btn-deny", [h("p", { class: "muted small", text: hint }), reason.el], () => {
      const body = { iteration: a.iteration };
      if (reason.input.value.trim()) body.reason = reason.input.value;
      this.send("reject", body);
    });
  }

  setBusy(busy) {
    this.busy = busy;
    this.el.toggleAttribute("aria-busy", busy);
    this.el.classList.toggle("busy", busy);
    for (const c of this.actions.querySelectorAll("button, input, textarea, select")) {
      if (busy) {
        c.dataset.wasDisabled = c.disabled ? "1" : "";
        c.disabled = true;
      } else {
        c.disabled = c.dataset.wasDisabled === "1";
        delete c.dataset.wasDisabled;
      }
    }
  }

  async send(action, body) {
    const a = this.a;
    this.setBusy(true);
    this.showResult("pending", `Sending ${action}…`);
    try {
      // The digest of what this card shows: a gate that changed since (the step ran again, the
      // gate was asked again) refuses the decision with STALE_VIEW, and nothing is recorded.
      const sent = a.digest ? { ...(body ?? {}), expectDigest: a.digest } : body;
      const r = await api("POST", `/v1/runs/${enc(a.runId)}/nodes/${enc(a.nodeId)}/${action}`, sent);
      this.setBusy(false);
      this.finish(action, r);
    } catch (e) {
      this.setBusy(false);
      this.failed(e);
    }
    this.env.onDecided?.();
  }

  finish(action, r) {
    const verb = r.status === "voted"
      ? `Vote recorded (${action === "approve" ? "approve" : "deny"}): ${r.quorum?.approvals.length ?? 0} of ${r.quorum?.needed ?? "?"} approvals`
      : ({ approve: "Approved", "push-back": "Pushed back", reject: "Rejected", deny: "Denied" }[action] ?? action);
    const msg = [h("strong", { text: `${verb}` })];
    if (r.round && this.a.kind === "review") msg.push(` round ${r.round}`);
    if (r.decidedBy) msg.push(" by ", h("strong", { text: r.decidedBy }));
    if (r.decidedAt) msg.push(" at ", timeEl(r.decidedAt));
    if (r.inputs && Object.keys(r.inputs).length) msg.push(inputsEl(r.inputs));
    const after = [];
    if (r.runStatus) after.push(h("span", null, "Run status: ", badge(r.runStatus, "badge-small")));
    if (action === "push-back") after.push(h("span", { text: " — the step runs again; its next round will show up here." }));
    else if (r.resumed) after.push(h("span", { text: " — resuming." }));
    if (after.length) msg.push(h("div", { class: "result-after" }, after));
    this.markDone();
    this.showResult("ok", msg);
  }

  failed(e) {
    const code = e instanceof ApiError ? e.code : "ERROR";
    const parts = [h("strong", { class: "mono", text: code }), h("span", { text: `: ${e?.message ?? e}` })];
    if (e instanceof ApiError && e.status) parts.push(h("span", { class: "muted", text: ` (HTTP ${e.status})` }));
    const d = e instanceof ApiError ? e.details : null;
    if (code === "ALREADY_DECIDED" && d) {
      parts.push(h("div", null, `Already ${d.status ?? "decided"}`, d.decidedBy ? [" by ", h("strong", { text: d.decidedBy })] : null, d.decidedAt ? [" at ", timeEl(d.decidedAt)] : null, "."));
    } else if (code === "FORBIDDEN") {
      parts.push(h("div", { text: `${state.me?.user ?? "You"} may not decide this approval.` }));
    } else if (d && typeof d === "object" && Object.keys(d).length) {
      parts.push(h("div", { class: "muted small mono", text: JSON.stringify(d) }));
    }
    if (CONTRACT.errorCodes[code]?.finalForDecision) {
      // Nothing more can be decided here: keep the card, with the error, until dismissed.
      this.markDone({ sticky: true });
    }
    this.showResult("error", parts);
  }

  markDone({ sticky = false } = {}) {
    this.done = true;
    this.sticky = sticky;
    this.doneAt = Date.now();
    this.doneRound = this.a.round ?? 1;
    this.waitedMs = this.clock ? this.clock.waitingMs + (Date.now() - this.clock.at) : 0;
    this.el.classList.add("done");
    this.toggle(null);
    this.actions.hidden = true;
    this.tick(Date.now());
    setTimeout(() => this.env.onDecided?.(), LINGER_DONE_MS + 50);
  }

  revive(a) {
    const after = this.result.querySelector(".result-after");
    if (after) after.textContent = `Round ${a.round} is waiting for review.`;
    this.done = false;
    this.sticky = false;
    this.el.classList.remove("done");
    this.actions.hidden = false;
    for (const f of this.pushBackFields ?? []) f.input.value = "";
    if (this.pushBackNote) this.pushBackNote.value = "";
  }

  showResult(kind, content) {
    this.result.replaceChildren();
    this.result.hidden = !content;
    this.result.dataset.kind = kind ?? "";
    this.result.setAttribute("role", kind === "error" ? "alert" : "status");
    if (!content) return;
    append(this.result, [content]);
    if (kind === "ok" || kind === "error") {
      this.result.append(
        h("button", {
          type: "button",
          class: "btn btn-small btn-ghost dismiss",
          text: this.done ? "Dismiss" : "Hide",
          onclick: () => {
            if (this.done) {
              this.dismissed = true;
              this.env.onDecided?.();
            } else this.showResult(null);
          },
        }),
      );
    }
  }

  /** Whether a card that is no longer in the fetched list should stay on screen. */
  lingers(now) {
    if (this.busy) return true;
    if (this.dismissed) return false;
    if (this.sticky) return true;
    return this.done && now - this.doneAt < LINGER_DONE_MS;
  }
}

/** A list of approval cards kept by key: unchanged cards keep their DOM (and form text). */
class CardList {
  constructor(container, env) {
    this.container = container;
    this.env = env;
    this.cards = new Map();
  }

  /** Shows `approvals` in order; returns the number of live (not lingering) cards. */
  sync(approvals, fetchedAt) {
    const now = Date.now();
    const seen = new Set();
    const lingering = new Set();
    for (const [key, card] of this.cards) {
      if (card.dismissed) {
        card.el.remove();
        this.cards.delete(key);
      }
    }
    let prev = null;
    for (const a of approvals) {
      const key = keyOf(a);
      if (seen.has(key)) continue;
      seen.add(key);
      let card = this.cards.get(key);
      if (!card) {
        card = new ApprovalCard(a, this.env);
        this.cards.set(key, card);
        card.update(a, fetchedAt);
      } else if (card.done && (a.round ?? 1) <= card.doneRound) {
        // Decided here; this list was fetched before the decision landed. Keep it as is.
      } else if (!card.busy) {
        card.update(a, fetchedAt);
      }
      let want = prev ? prev.nextSibling : this.container.firstChild;
      while (want && want !== card.el && this.isLingering(want, seen)) want = want.nextSibling;
      if (want !== card.el) this.container.insertBefore(card.el, want);
      prev = card.el;
    }
    for (const [key, card] of this.cards) {
      if (seen.has(key)) continue;
      if (card.lingers(now)) lingering.add(key);
      else {
        card.el.remove();
        this.cards.delete(key);
      }
    }
    return { live: seen.size, lingering: lingering.size };
  }

  isLingering(el, seen) {
    const key = el.dataset?.key;
    return key !== undefined && this.cards.has(key) && !seen.has(key);
  }

  tick(now) {
    for (const c of this.cards.values()) c.tick(now);
  }
}

// --------------------------------------------------------------------------- inbox view

class InboxView {
  constructor() {
    const params = new URLSearchParams(location.search);
    this.pages = 1;
    this.seq = 0;
    this.nextCursor = null;
    // Page size: 50, or ?limit=N (1-500) in the address.
    const limit = Number(params.get("limit"));
    this.pageSize = Number.isInteger(limit) && limit >= 1 && limit <= 500 ? limit : 50;
    this.known = { workflows: new Set(), nodes: new Set() };

    const wfId = uid("f-wf");
    const nodeId = uid("f-node");
    this.wfList = h("datalist", { id: uid("dl") });
    this.nodeList = h("datalist", { id: uid("dl") });
    this.wfInput = h("input", { id: wfId, type: "search", name: "workflow", list: this.wfList.id, autocomplete: "off", value: params.get("workflow") ?? "", placeholder: "any" });
    this.nodeInput = h("input", { id: nodeId, type: "search", name: "node", list: this.nodeList.id, autocomplete: "off", value: params.get("node") ?? "", placeholder: "any" });
    this.clearBtn = h("button", { type: "button", class: "btn btn-small btn-ghost", text: "Clear filters", onclick: () => this.clearFilters() });
    this.count = h("p", { class: "count", role: "status", "aria-live": "polite" });
    this.error = h("div", { class: "banner banner-error", role: "alert", hidden: true });
    /** Runs smithers serve could not resume (their decisions wait for someone to fix them). */
    this.stuck = h("section", { class: "banner banner-error stuck", "aria-label": "Runs that cannot be resumed", hidden: true });
    this.list = h("div", { class: "cards" });
    this.empty = h("div", { class: "empty", hidden: true });
    this.more = h("button", { type: "button", class: "btn", text: "Load more", hidden: true, onclick: () => this.loadMore() });

    const filterForm = h(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter approvals", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field field-inline" }, h("label", { for: wfId, text: "Workflow" }), this.wfInput),
      h("div", { class: "field field-inline" }, h("label", { for: nodeId, text: "Node" }), this.nodeInput),
      this.clearBtn,
      this.wfList,
      this.nodeList,
    );
    let t = null;
    const onFilter = () => {
      clearTimeout(t);
      t = setTimeout(() => this.filtersChanged(), 250);
    };
    this.wfInput.addEventListener("input", onFilter);
    this.nodeInput.addEventListener("input", onFilter);

    this.cardsList = new CardList(this.list, { showRunLink: true, onDecided: () => refresher.schedule(0) });
    this.el = h(
      "section",
      { class: "view inbox", "aria-labelledby": "inbox-title" },
      h("div", { class: "view-head" }, h("h1", { id: "inbox-title", text: "Waiting for approval" }), this.count, filterForm),
      this.error,
      this.stuck,
      this.list,
      this.empty,
      h("div", { class: "more" }, this.more),
    );
    this.updateClear();
  }

  filters() {
    return { workflow: this.wfInput.value.trim(), node: this.nodeInput.value.trim() };
  }

  updateClear() {
    const f = this.filters();
    this.clearBtn.hidden = !f.workflow && !f.node;
  }

  filtersChanged() {
    const f = this.filters();
    const url = new URL(location.href);
    for (const k of ["workflow", "node"]) {
      if (f[k]) url.searchParams.set(k, f[k]);
      else url.searchParams.delete(k);
    }
    history.replaceState(null, "", url.pathname + url.search);
    this.pages = 1;
    this.updateClear();
    refresher.schedule(0);
  }

  clearFilters() {
    this.wfInput.value = "";
    this.nodeInput.value = "";
    this.filtersChanged();
    this.wfInput.focus();
  }

  query(cursor) {
    const f = this.filters();
    const q = new URLSearchParams({ status: "requested", limit: String(this.pageSize) });
    if (f.workflow) q.set("workflow", f.workflow);
    if (f.node) q.set("node", f.node);
    if (cursor) q.set("cursor", cursor);
    return `/v1/approvals?${q}`;
  }

  async refresh() {
    const seq = ++this.seq;
    const items = [];
    let cursor = null;
    let pages = 0;
    do {
      const r = await api("GET", this.query(cursor));
      items.push(...(r.approvals ?? []));
      cursor = r.nextCursor ?? null;
      pages++;
    } while (cursor && pages < this.pages);
    const stuck = await api("GET", "/v1/runs?status=running&resumeFailed=true&limit=50").then((r) => r.runs ?? [], () => []);
    if (seq !== this.seq || state.view !== this) return;
    this.render(items, cursor, Date.now());
    this.renderStuck(stuck);
  }

  renderStuck(runs) {
    this.stuck.hidden = runs.length === 0;
    if (runs.length === 0) return this.stuck.replaceChildren();
    this.stuck.replaceChildren(
      h("p", { class: "stuck-title", text: `${runs.length}${runs.length === 50 ? "+" : ""} run${runs.length === 1 ? "" : "s"} cannot be resumed` }),
      h(
        "ul",
        { class: "stuck-list" },
        runs.map((r) =>
          h(
            "li",
            null,
            h("a", { href: runHref(r.runId), "data-nav": "", text: r.runId }),
            ` (${r.workflowName}): `,
            h("code", { text: r.resumeError?.code ?? "?" }),
            ` ${r.resumeError?.message ?? ""}`,
          ),
        ),
      ),
    );
  }

  async loadMore() {
    if (!this.nextCursor) return;
    this.more.disabled = true;
    try {
      this.pages++;
      await this.refresh();
    } catch (e) {
      this.pages--;
      this.showError(e);
    } finally {
      this.more.disabled = false;
    }
  }

  render(items, cursor, fetchedAt) {
    this.showError(null);
    this.items = items;
    this.nextCursor = cursor;
    for (const a of items) {
      if (a.workflowName) this.known.workflows.add(a.workflowName);
      if (a.nodeId) this.known.nodes.add(a.nodeId);
    }
    fillDatalist(this.wfList, this.known.workflows);
    fillDatalist(this.nodeList, this.known.nodes);

    const { live: n } = this.cardsList.sync(items, fetchedAt);
    const f = this.filters();
    const filtered = Boolean(f.workflow || f.node);
    const countText = `${n}${cursor ? "+" : ""} waiting${filtered ? " (filtered)" : ""}`;
    if (this.count.textContent !== countText) this.count.textContent = countText;
    document.title = n ? `(${n}${cursor ? "+" : ""}) Inbox — Smithers` : "Inbox — Smithers";
    this.more.hidden = !cursor;

    const showEmpty = n === 0 && this.cardsList.cards.size === 0;
    this.empty.hidden = !showEmpty;
    if (showEmpty) {
      this.empty.replaceChildren(
        ...(filtered
          ? [h("p", { class: "empty-title", text: "No approvals match these filters" }), h("p", null, h("button", { type: "button", class: "btn", text: "Clear filters", onclick: () => this.clearFilters() }))]
          : [
              h("p", { class: "empty-title", text: "No approvals waiting" }),
              h("p", { class: "muted", text: "Start a workflow that asks for one and it shows up here at once, for example:" }),
              h("pre", { class: "pre hint", text: `npx smithers up examples/publish-approval.tsx --input '{"title":"Hello"}'` }),
            ]),
      );
    }
  }

  showError(e) {
    this.error.hidden = !e;
    this.error.textContent = e ? `Could not load the approvals: ${errorText(e)}` : "";
  }

  tick(now) {
    this.cardsList.tick(now);
  }

  destroy() {
    this.seq++;
  }
}

/** One field of a human task's answer form, for a property of its JSON Schema. */
function answerField(name, schema, required) {
  const id = uid("ans");
  const types = [schema.type, ...(schema.anyOf ?? []).map((s) => s.type)].flat().filter((t) => t && t !== "null");
  const nullable = [schema.type, ...(schema.anyOf ?? []).map((s) => s.type)].flat().includes("null");
  const choices = schema.enum ?? schema.anyOf?.find((s) => s.enum)?.enum;
  const label = h(
    "label",
    { for: id },
    h("span", { class: "mono", text: name }),
    required ? h("span", { class: "req", "aria-hidden": "true", text: " *" }) : null,
    schema.description ? h("span", { class: "muted small", text: ` — ${schema.description}` }) : null,
  );
  let input;
  let read;
  if (types.length === 1 && types[0] === "boolean") {
    input = h("input", { id, name, type: "checkbox" });
    return { name, required, label, input, checkbox: true, read: () => input.checked };
  }
  if (Array.isArray(choices) && choices.every((c) => typeof c === "string")) {
    input = h("select", { id, name }, h("option", { value: "", text: "—" }), choices.map((c) => h("option", { value: c, text: c })));
    read = () => (input.value === "" ? (nullable ? null : undefined) : input.value);
  } else if (types.length === 1 && (types[0] === "number" || types[0] === "integer")) {
    input = h("input", { id, name, type: "number", step: types[0] === "integer" ? "1" : "any" });
    read = () => (input.value.trim() === "" ? undefined : Number(input.value));
  } else if (types.length === 1 && types[0] === "string") {
    input = h("input", { id, name, type: "text", autocomplete: "off" });
    read = () => (input.value === "" ? (nullable && !required ? null : required ? undefined : "") : input.value);
  } else {
    input = h("textarea", { id, name, rows: "3", class: "mono", placeholder: "JSON" });
    read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch (e) {
        return new Error(`not JSON (${e.message})`);
      }
    };
  }
  return { name, required, label, input, read };
}

function fillDatalist(dl, values) {
  const sorted = [...values].sort();
  if (dl.dataset.sig === sorted.join("\n")) return;
  dl.dataset.sig = sorted.join("\n");
  dl.replaceChildren(...sorted.map((v) => h("option", { value: v })));
}

// --------------------------------------------------------------------------- run view

const EVENTS_KEPT = 300;
const EVENT_PAGE = 200;

class RunView {
  constructor(runId) {
    this.runId = runId;
    this.seq = 0;
    this.lastSeq = 0;
    this.events = [];
    this.titleEl = h("h1", { class: "run-title" }, h("span", { class: "mono", text: runId }));
    this.statusEl = h("span");
    this.summary = h("dl", { class: "summary" });
    this.runError = h("div", { class: "banner banner-error", hidden: true });
    this.error = h("div", { class: "banner banner-error", role: "alert", hidden: true });
    this.pendingWrap = h("section", { class: "run-section", "aria-labelledby": "pending-title", hidden: true });
    this.pendingTitle = h("h2", { id: "pending-title", text: "Waiting for a decision" });
    this.pendingList = h("div", { class: "cards" });
    this.pendingWrap.append(this.pendingTitle, this.pendingList);
    this.cardsList = new CardList(this.pendingList, { showRunLink: (a) => a.runId !== this.runId, onDecided: () => refresher.schedule(0) });
    this.nodesBody = h("tbody");
    this.approvalsBody = h("tbody");
    this.approvalsWrap = h("section", { class: "run-section", "aria-labelledby": "appr-title" });
    this.eventsBody = h("tbody");
    this.eventsNote = h("p", { class: "muted small" });
    this.inputPre = h("pre", { class: "pre", tabindex: "0" });
    this.inputDetails = h("details", { class: "output json" }, h("summary", { text: "Run input" }), this.inputPre);

    const table = (caption, heads, body) =>
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, h("table", null, h("caption", { class: "sr-only", text: caption }), h("thead", null, h("tr", null, heads.map((t) => h("th", { scope: "col", text: t })))), body));

    this.approvalsWrap.append(
      h("h2", { id: "appr-title", text: "Approvals" }),
      table("Approvals of this run", ["Node", "Kind", "Round", "Status", "Decided by", "Decided at", "Note / reason", "Inputs"], this.approvalsBody),
    );

    this.content = h("div", { class: "run-content", hidden: true });
    this.el = h(
      "section",
      { class: "view run" },
      h("p", { class: "back" }, h("a", { href: "/", "data-nav": true, text: "← Inbox" })),
      h("div", { class: "view-head" }, this.titleEl, this.statusEl),
      this.error,
      this.content,
    );
    this.content.append(
      this.runError,
      this.summary,
      this.inputDetails,
      this.pendingWrap,
      h("section", { class: "run-section", "aria-labelledby": "nodes-title" }, h("h2", { id: "nodes-title", text: "Nodes" }), table("Nodes of this run", ["Node", "Iteration", "State", "Label", "Attempts", "Updated", "Detail"], this.nodesBody)),
      this.approvalsWrap,
      h("section", { class: "run-section", "aria-labelledby": "events-title" }, h("h2", { id: "events-title", text: "Recent events" }), this.eventsNote, table("Events of this run, newest first", ["#", "Time", "Type", "Node", "Detail"], this.eventsBody)),
    );
    document.title = `${runId} — Smithers`;
  }

  /** Only this run's events (and its sub-runs') trigger a refresh. */
  wants(event) {
    return !event.runId || event.runId === this.runId || String(event.runId).startsWith(`${this.runId}.`);
  }

  async refresh() {
    const seq = ++this.seq;
    const fetchedAt = Date.now();
    let detail;
    try {
      detail = await api("GET", `/v1/runs/${enc(this.runId)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        if (seq === this.seq) this.notFound(e);
        return;
      }
      throw e;
    }
    let pending;
    try {
      const r = await api("GET", `/v1/approvals?${new URLSearchParams({ runId: this.runId, status: "requested", limit: "100" })}`);
      // This run's gates and those of its sub-runs (it waits on them too).
      pending = r.approvals ?? [];
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) throw e;
      pending = (detail.approvals ?? []).filter((a) => a.status === "requested");
    }
    const fresh = [];
    for (let i = 0; i < 50; i++) {
      const after = fresh.length ? fresh[fresh.length - 1].seq : this.lastSeq;
      const r = await api("GET", `/v1/runs/${enc(this.runId)}/events?after=${after}&limit=${EVENT_PAGE}`);
      const evs = r.events ?? [];
      fresh.push(...evs);
      if (evs.length < EVENT_PAGE) break;
    }
    if (seq !== this.seq || state.view !== this) return;
    if (fresh.length) {
      this.events = this.events.concat(fresh).slice(-EVENTS_KEPT);
      this.lastSeq = this.events[this.events.length - 1].seq;
    }
    this.render(detail, pending, fetchedAt);
  }

  notFound(e) {
    this.error.hidden = false;
    this.error.textContent = `${e.code}: ${e.message}`;
    this.content.hidden = true;
    document.title = `${this.runId} (not found) — Smithers`;
  }

  render(d, pending, fetchedAt) {
    this.showError(null);
    this.content.hidden = false;
    const run = d.run ?? {};
    this.titleEl.replaceChildren(h("span", { text: run.workflowName ?? "run" }), " ", h("span", { class: "mono run-id", text: this.runId }));
    this.statusEl.replaceChildren(badge(run.status, "badge-large"));
    document.title = `${run.workflowName ?? ""} ${this.runId} (${run.status ?? "?"}) — Smithers`;

    const row = (k, v) => [h("dt", { text: k }), h("dd", null, v)];
    this.summary.replaceChildren(
      ...row("Workflow", h("span", null, h("strong", { text: run.workflowName ?? "?" }), run.workflowPath ? h("span", { class: "muted mono small", text: ` ${run.workflowPath}` }) : null)),
      ...row("Status", badge(run.status)),
      ...row("Created", timeEl(run.createdAt, { relative: true })),
      ...row("Updated", timeEl(run.updatedAt, { relative: true })),
      ...(run.finishedAt ? row("Finished", timeEl(run.finishedAt, { relative: true })) : []),
      ...row("Started by", run.startedBy ? h("span", { text: run.startedBy }) : h("span", { class: "muted", text: "—" })),
      ...(run.owner ? row("Driven by", h("span", { class: "mono small", text: `${run.owner}${run.ownerLiveness ? ` (${run.ownerLiveness})` : ""}` })) : []),
      ...(run.parentRunId ? row("Called by", h("a", { class: "mono", href: runHref(run.parentRunId), "data-nav": true, text: `${run.parentRunId} (${run.parentNodeId})` })) : []),
      ...(run.rejection
        ? row("Rejected", h("span", null, h("span", { class: "mono", text: run.rejection.nodeId }), ` by ${run.rejection.rejectedBy ?? "?"} `, timeEl(run.rejection.rejectedAt), run.rejection.rejectionReason ? `: ${run.rejection.rejectionReason}` : ""))
        : []),
      ...row("Pending approvals", h("span", { text: String(run.pendingApprovals ?? pending.length) })),
    );
    this.runError.hidden = !run.error;
    this.runError.replaceChildren();
    if (run.error) this.runError.append(h("strong", { class: "mono", text: run.error.code ?? "ERROR" }), h("span", { text: `: ${run.error.message ?? ""}` }));

    const input = d.input;
    const hasInput = input !== null && input !== undefined && !(typeof input === "object" && Object.keys(input).length === 0);
    this.inputDetails.hidden = !hasInput;
    const inputText = hasInput ? pretty(input) : "";
    if (this.inputPre.textContent !== inputText) this.inputPre.textContent = inputText;

    const { live, lingering } = this.cardsList.sync(pending, fetchedAt);
    this.pendingWrap.hidden = live + lingering === 0;

    this.nodesBody.replaceChildren(
      ...(d.nodes ?? []).map((n) =>
        h(
          "tr",
          { dataset: { node: n.nodeId, state: n.state } },
          h("td", { class: "mono", text: n.nodeId }),
          h("td", { class: "num", text: String(n.iteration ?? 0) }),
          h("td", null, badge(n.state)),
          h("td", { text: n.label ?? "" }),
          h("td", { class: "num", text: String(n.attempts ?? 0) }),
          h("td", null, timeEl(n.updatedAt)),
          h(
            "td",
            { class: "small" },
            n.error
              ? h("span", { class: "err-text" }, h("strong", { class: "mono", text: n.error.code ?? "ERROR" }), `: ${n.error.message ?? ""}`)
              : n.subRunId
                ? h("span", null, n.state === "waiting-approval" ? "waits for sub-run " : "sub-run ", h("a", { class: "mono", href: runHref(n.subRunId), "data-nav": true, text: n.subRunId }))
                : n.skipReason
                  ? h("span", { class: "muted", text: n.skipReason })
                  : null,
          ),
        ),
      ),
    );
    if (!(d.nodes ?? []).length) this.nodesBody.append(h("tr", null, h("td", { colspan: "7", class: "muted", text: "No nodes yet." })));

    const approvals = d.approvals ?? [];
    this.approvalsWrap.hidden = approvals.length === 0;
    const rows = [];
    for (const a of approvals) {
      for (const r of a.history ?? []) {
        // A decided review's last round is the approval row itself.
        if (a.status !== "requested" && r.iteration === a.round && r.status === a.status) continue;
        rows.push(
          h(
            "tr",
            { class: "history-row" },
            h("td", { class: "mono" }, a.nodeId, a.iteration ? ` #${a.iteration}` : ""),
            h("td", { text: a.kind ?? "" }),
            h("td", { class: "num", text: String(r.iteration ?? "") }),
            h("td", null, badge(r.status)),
            h("td", { text: r.by ?? "" }),
            h("td", null, timeEl(r.at)),
            h("td", { class: "pre-wrap", text: r.note ?? "" }),
            h("td", null, inputsEl(r.inputs)),
          ),
        );
      }
      rows.push(
        h(
          "tr",
          { dataset: { node: a.nodeId, status: a.status } },
          h("td", { class: "mono" }, a.nodeId, a.iteration ? ` #${a.iteration}` : ""),
          h("td", { text: a.kind ?? "" }),
          h("td", { class: "num", text: a.kind === "review" ? String(a.round ?? 1) : "" }),
          h("td", null, badge(a.status)),
          h("td", { text: a.decidedBy ?? "" }),
          h("td", null, a.decidedAt ? timeEl(a.decidedAt) : a.status === "requested" ? h("span", { class: "muted" }, "requested ", timeEl(a.requestedAt)) : null),
          h("td", { class: "pre-wrap" }, a.reason ? h("span", null, h("span", { class: "muted", text: "reason: " }), a.reason) : null, a.note && a.note !== a.reason ? h("div", { text: a.note }) : null),
          h("td", null, inputsEl(a.inputs)),
        ),
      );
    }
    this.approvalsBody.replaceChildren(...rows);

    const shown = this.events.slice().reverse();
    this.eventsNote.textContent = shown.length ? `The last ${shown.length} event${shown.length === 1 ? "" : "s"}, newest first.` : "No events.";
    this.eventsBody.replaceChildren(
      ...shown.map((e) => {
        const { runId: _r, seq, type, timestampMs, nodeId, iteration, feedId: _f, ...rest } = e;
        const detail = Object.keys(rest).length ? JSON.stringify(rest) : "";
        return h(
          "tr",
          null,
          h("td", { class: "num", text: String(seq) }),
          h("td", null, timeEl(new Date(timestampMs).toISOString())),
          h("td", null, h("span", { class: `ev-type tone-text-${eventTone(type)}`, text: type })),
          h("td", { class: "mono" }, nodeId ?? "", iteration ? ` #${iteration}` : ""),
          h("td", { class: "mono small ev-detail", title: detail.length > 160 ? detail : null, text: detail.length > 160 ? `${detail.slice(0, 160)}…` : detail }),
        );
      }),
    );
  }

  showError(e) {
    this.error.hidden = !e;
    this.error.textContent = e ? `Could not load the run: ${errorText(e)}` : "";
  }

  tick(now) {
    this.cardsList.tick(now);
  }

  destroy() {
    this.seq++;
  }
}

function eventTone(type) {
  if (/Failed|Rejected|Denied|Cancelled|Abandoned/.test(type)) return "bad";
  if (/Finished|Granted/.test(type)) return "ok";
  if (/Approval|Waiting|PushedBack/.test(type)) return "warn";
  return "neutral";
}

// --------------------------------------------------------------------------- boot

async function start() {
  state.me = await api("GET", "/v1/me");
  renderWho();
  live.start();
  route();
}

/**
 * A sign-in link's token is not used until the person at the browser says so: a link made by
 * someone else would otherwise sign them in as that someone (login CSRF). The page says whose
 * token it is (asked with the token itself, nothing stored) and who is signed in now.
 */
async function confirmSignIn(token) {
  let who;
  try {
    who = await api("GET", "/v1/me", undefined, { token });
  } catch (e) {
    return renderSignIn(`The sign-in link did not work (${errorText(e)}).`);
  }
  const current = await api("GET", "/v1/me").catch(() => null);
  document.title = "Sign in — Smithers";
  const yes = h("button", { type: "button", class: "btn btn-primary", text: `Sign in as ${who.user}` });
  const no = h("button", { type: "button", class: "btn", text: "Cancel" });
  const err = h("p", { class: "form-error", role: "alert", hidden: true });
  const card = h(
    "section",
    { class: "signin card", "aria-labelledby": "confirm-title" },
    h("h1", { id: "confirm-title", text: `Sign in as ${who.user}?` }),
    h("p", null, "This sign-in link is for ", h("strong", { text: who.user }), (who.scopes ?? []).length ? ` (${who.scopes.join(", ")})` : "", ". Use it only if you asked for it."),
    current ? h("p", { class: "muted", text: `You are signed in as ${current.user} now.` }) : null,
    err,
    h("div", { class: "form-actions" }, yes, no),
  );
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    try {
      await api("POST", "/v1/session", { token });
      await start();
    } catch (e) {
      showFormError(err, errorText(e));
      yes.disabled = false;
    }
  });
  no.addEventListener("click", () => (current ? start() : renderSignIn()));
  $main().replaceChildren(card);
  yes.focus();
}

async function boot() {
  const token = takeUrlToken();
  if (token) return confirmSignIn(token);
  try {
    await start();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) renderSignIn();
    else {
      $main().replaceChildren(
        h("div", { class: "banner banner-error", role: "alert", text: `Could not reach the server: ${errorText(e)}` }),
        h("p", null, h("button", { type: "button", class: "btn", text: "Try again", onclick: () => boot() })),
      );
    }
  }
}

boot();
