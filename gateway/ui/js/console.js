// The supervisor console: review queue, hand-offs, KPIs, audit log and knowledge base.
// Every screen is mountX(root, ctx) and returns a cleanup function (intervals, in-flight uploads).
// DOM is built with el() / createElementNS only: nothing a model, a customer or a document wrote becomes markup.

import { api, describe, el, signOut, token } from "./api.js";

// -- small helpers --------------------------------------------------------------------------------------------

let uidSeq = 0;
const uid = (prefix) => `${prefix}-${++uidSeq}`;

const hasRole = (me, ...roles) => roles.some((r) => ((me && me.roles) || []).includes(r));

const DASH = "—";

function fmtDate(x) {
  if (!x) return DASH;
  const d = new Date(x);
  return Number.isNaN(d.getTime()) ? String(x) : d.toLocaleString();
}

function truncate(text, n) {
  const s = text == null ? "" : String(text);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

const shortId = (id) => (id ? String(id).slice(0, 8) : DASH);

function pct(v) {
  return v == null ? DASH : `${(v * 100).toFixed(1)} %`;
}

function ms(v) {
  return v == null ? DASH : `${Math.round(v).toLocaleString()} ms`;
}

function duration(seconds) {
  if (seconds == null) return DASH;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

function isEmpty(obj) {
  return obj == null || (typeof obj === "object" && Object.keys(obj).length === 0);
}

/** A JSON value, pretty and truncated, folded into a <details> whose summary is its first characters. */
function jsonDetails(value, key, max = 2000) {
  if (isEmpty(value)) return DASH;
  let pretty = JSON.stringify(value, null, 2);
  if (pretty.length > max) pretty = `${pretty.slice(0, max)}\n… (truncated)`;
  return el("details", { "data-key": key },
    el("summary", {}, truncate(JSON.stringify(value), 60)),
    el("pre", { class: "json" }, pretty));
}

/** A labelled <select>: returns {field, select}. */
function selectField(label, options, value, attrs = {}) {
  const id = uid("sel");
  const select = el("select", { id, ...attrs },
    ...options.map(([v, text]) => el("option", { value: v, selected: String(v) === String(value) }, text)));
  select.value = String(value);
  return { field: el("div", { class: "field" }, el("label", { for: id }, label), select), select };
}

/** A labelled <input>: returns {field, input}. */
function inputField(label, attrs = {}) {
  const id = uid("in");
  const input = el("input", { id, ...attrs });
  return { field: el("div", { class: "field" }, el("label", { for: id }, label), input), input };
}

function headerRow(...labels) {
  return el("thead", {}, el("tr", {}, ...labels.map((h) => el("th", { scope: "col" }, h))));
}

/** The screen's frame: <section class="console" aria-labelledby> with its <h1>. */
function frame(root, name, title) {
  const id = `${name}-title`;
  const heading = el("h1", { id, tabindex: "-1" }, title);
  const section = el("section", { class: "console", "aria-labelledby": id, "data-screen": name }, heading);
  root.replaceChildren(section);
  return { section, heading };
}

/**
 * A loader that never overlaps itself (polls are skipped while one is in flight; a forced load wins over an older
 * one), drops answers that arrive after the screen went away, and shows an error once rather than every poll.
 */
function loader(ctx, fetcher, apply) {
  let reqNo = 0;
  let pending = 0;
  let lastError = null;
  let alive = true;
  const run = async (force = false) => {
    if (!alive || (!force && pending)) return;
    const my = ++reqNo;
    pending++;
    try {
      const data = await fetcher();
      if (!alive || my !== reqNo) return;
      lastError = null;
      apply(data);
    } catch (err) {
      if (!alive || my !== reqNo || err.name === "AbortError") return;
      const message = describe(err);
      if (force || message !== lastError) ctx.banner(message);
      lastError = message;
    } finally {
      pending--;
    }
  };
  run.stop = () => {
    alive = false;
  };
  return run;
}

/** Re-renders a container and keeps what the person was doing: open <details>, and focus (by data-key). */
function rerender(container, build, fallbackFocus) {
  const active = document.activeElement;
  const hadFocus = container.contains(active);
  const focusKey = hadFocus && active ? active.getAttribute("data-key") : null;
  const open = new Set([...container.querySelectorAll("details[open][data-key]")].map((d) => d.getAttribute("data-key")));
  build();
  for (const d of container.querySelectorAll("details[data-key]")) {
    if (open.has(d.getAttribute("data-key"))) d.open = true;
  }
  if (!hadFocus) return;
  const again = focusKey && [...container.querySelectorAll("[data-key]")].find((n) => n.getAttribute("data-key") === focusKey);
  if (again) again.focus();
  else if (!container.contains(document.activeElement) && fallbackFocus) fallbackFocus.focus();
}

/**
 * A modal <dialog>: a question, optionally a note (textarea), Confirm / Cancel. Resolves {note} or null (cancelled).
 */
function ask(host, { title, body = [], noteLabel = null, required = false, confirm = "OK", danger = false, testid }) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const noteId = uid("note");
    const note = noteLabel ? el("textarea", { id: noteId, rows: 4, maxlength: 2000, required }) : null;
    const problem = el("p", { class: "message", "aria-live": "polite" });
    let result = null;
    const dialog = el("dialog", { "aria-labelledby": titleId, "data-testid": testid || "dialog" });
    const form = el("form", { class: "dialog-form" },
      el("h2", { id: titleId }, title),
      ...body,
      note ? el("label", { for: noteId }, noteLabel) : null,
      note,
      note ? problem : null,
      el("div", { class: "row-actions" },
        el("button", { type: "submit", class: danger ? "danger" : null, "data-testid": "dialog-confirm" }, confirm),
        el("button", { type: "button", class: "secondary", "data-testid": "dialog-cancel", onclick: () => dialog.close() },
          "Cancel")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = note ? note.value.trim() : "";
      if (required && !value) {
        problem.textContent = "A reason is required.";
        note.focus();
        return;
      }
      result = { note: value || null };
      dialog.close();
    });
    dialog.append(form);
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    host.append(dialog);
    dialog.showModal();
    (note || form.querySelector("button")).focus();
  });
}

const dialogOpen = (section) => Boolean(section.querySelector("dialog[open]"));

// -- 1. review queue ------------------------------------------------------------------------------------------

const KIND_LABEL = { approval: "Approval", injection: "Prompt injection", tool_violation: "Tool violation" };
const REVIEW_VERBS = {
  approve: { label: "Approve", past: "Approved" },
  reject: { label: "Reject", past: "Rejected" },
  dismiss: { label: "Dismiss", past: "Dismissed" },
};

function reviewSubject(item) {
  if (item.kind === "approval") return `action ${item.tool || shortId(item.action_id)}`;
  return `${(KIND_LABEL[item.kind] || item.kind).toLowerCase()} flag: ${truncate(item.reason, 60)}`;
}

export function mountReview(root, ctx) {
  const canDecide = hasRole(ctx.me, "supervisor", "admin");
  const { section, heading } = frame(root, "review", "Review queue");
  const { field: stateField, select: stateSel } = selectField("State",
    [["open", "Open"], ["approved", "Approved"], ["rejected", "Rejected"], ["dismissed", "Dismissed"]], "open",
    { "data-testid": "review-state" });
  const status = el("p", { class: "status", role: "status" }, "Loading…");
  const tbody = el("tbody");
  const table = el("table", { hidden: true },
    el("caption", { class: "visually-hidden" }, "Review items"),
    headerRow("Kind", "Reason", "Created", "Detail", "State", ...(canDecide ? ["Actions"] : [])),
    tbody);
  let busy = false;

  section.append(
    el("p", { class: "hint" }, canDecide
      ? "High-risk actions wait here for a decision; flagged exchanges wait to be cleared. The list refreshes every 5 seconds."
      : "You can read the queue; deciding needs the supervisor or admin role. The list refreshes every 5 seconds."),
    el("div", { class: "filters" }, stateField),
    status, table);

  function stateCell(item) {
    if (item.state === "open") {
      return el("td", {}, "Open", item.action_state ? el("div", { class: "muted" }, `action: ${item.action_state}`) : null);
    }
    return el("td", {},
      el("span", { class: item.state === "rejected" ? "bad" : "ok" }, item.state),
      el("div", { class: "muted" }, `by ${item.decided_by || DASH}, ${fmtDate(item.decided_at)}`),
      item.note ? el("div", {}, `Note: ${item.note}`) : null);
  }

  function row(item) {
    const detail = item.kind === "approval" && item.args ? { args: item.args, ...(item.detail || {}) } : item.detail;
    const buttons = [];
    if (canDecide && item.state === "open") {
      const verdicts = item.kind === "approval" ? ["approve", "reject"] : ["dismiss"];
      for (const v of verdicts) {
        buttons.push(el("button", {
          type: "button", class: v === "reject" ? "danger" : v === "dismiss" ? "secondary" : null,
          "data-testid": v, "data-key": `${v}:${item.id}`, "aria-label": `${REVIEW_VERBS[v].label} ${reviewSubject(item)}`,
          disabled: busy, onclick: () => decide(item, v),
        }, REVIEW_VERBS[v].label));
      }
    }
    return el("tr", { "data-testid": "review-row", "data-id": item.id, "data-kind": item.kind },
      el("td", {}, KIND_LABEL[item.kind] || item.kind),
      el("td", {}, item.kind === "approval" && item.tool ? el("strong", {}, item.tool) : null,
        item.kind === "approval" && item.tool ? el("br") : null, item.reason || DASH,
        item.session_id ? el("div", { class: "muted", title: item.session_id }, `session ${shortId(item.session_id)}`) : null),
      el("td", {}, fmtDate(item.created_at)),
      el("td", {}, jsonDetails(detail, `detail:${item.id}`)),
      stateCell(item),
      ...(canDecide ? [el("td", {}, el("div", { class: "row-actions" }, ...buttons))] : []));
  }

  let lastKey = null;
  function render(items, state) {
    const key = state + JSON.stringify(items);
    if (key === lastKey) return;
    lastKey = key;
    rerender(table, () => tbody.replaceChildren(...items.map(row)), heading);
    table.hidden = items.length === 0;
    status.textContent = items.length
      ? `${items.length} ${state} item${items.length === 1 ? "" : "s"}${items.length >= 200 ? " (the first 200)" : ""}.`
      : state === "open" ? "Nothing waiting." : `No ${state} items.`;
  }

  const load = loader(ctx, async () => {
    const state = stateSel.value;
    const res = await api(`/v1/review?state=${encodeURIComponent(state)}&limit=200`);
    return { state, items: (res && res.data) || [] };
  }, ({ state, items }) => {
    if (state === stateSel.value) render(items, state);
  });

  async function decide(item, verdict) {
    if (busy) return;
    const verb = REVIEW_VERBS[verdict];
    const subject = item.kind === "approval" ? `action ${item.tool || shortId(item.action_id)}` : (KIND_LABEL[item.kind] || item.kind).toLowerCase();
    const answer = await ask(section, {
      title: `${verb.label} ${subject}?`,
      body: [
        el("p", {}, item.reason || ""),
        item.kind === "approval" && item.args ? el("pre", { class: "json" }, truncate(JSON.stringify(item.args, null, 2), 1500)) : null,
      ],
      noteLabel: verdict === "reject" ? "Reason (required)" : "Note (optional)",
      required: verdict === "reject",
      confirm: verb.label,
      danger: verdict === "reject",
      testid: "decision-dialog",
    });
    if (!answer) return;
    busy = true;
    for (const b of tbody.querySelectorAll("button")) b.disabled = true;
    try {
      await api(`/v1/review/${encodeURIComponent(item.id)}/${verdict}`, {
        method: "POST", json: answer.note ? { note: answer.note } : {},
      });
      ctx.banner(`${verb.past} ${subject}.`, "info");
    } catch (err) {
      ctx.banner(describe(err));
    } finally {
      busy = false;
      lastKey = null;
      await load(true);
      if (!section.contains(document.activeElement) || document.activeElement === document.body) heading.focus();
    }
  }

  stateSel.addEventListener("change", () => {
    lastKey = null;
    status.textContent = "Loading…";
    load(true);
  });
  load(true);
  const timer = setInterval(() => {
    if (!busy && !dialogOpen(section)) load();
  }, 5000);
  return () => {
    clearInterval(timer);
    load.stop();
  };
}

// -- 2. hand-offs ---------------------------------------------------------------------------------------------

const AGENT_PREFIX = "agent:";

export function mountHandoffs(root, ctx) {
  const me = ctx.me || {};
  const senior = hasRole(me, "supervisor", "admin");
  const { section, heading } = frame(root, "handoffs", "Hand-offs");
  let timer = null;
  let alive = true;
  const setTimer = (fn, every) => {
    if (timer) clearInterval(timer);
    timer = fn ? setInterval(fn, every) : null;
  };

  // list view
  const { field: stateField, select: stateSel } = selectField("State",
    [["queued", "Queued"], ["active", "Active"], ["closed", "Closed"]], "queued", { "data-testid": "handoff-state" });
  const status = el("p", { class: "status", role: "status" }, "Loading…");
  const tbody = el("tbody");
  const table = el("table", { hidden: true },
    el("caption", { class: "visually-hidden" }, "Hand-offs"),
    headerRow("Created", "Reason", "Intent", "Summary", "State", "Actions"), tbody);
  const listView = el("div", { class: "stack" },
    el("p", { class: "hint" }, "Sessions the assistant handed to a person. Taking one over puts you in the customer's chat."),
    el("div", { class: "filters" }, stateField), status, table);
  // conversation view (built per hand-off)
  const convoView = el("div", { class: "stack", hidden: true });
  section.append(listView, convoView);

  function row(h) {
    const mine = h.agent && h.agent === me.subject;
    let action = null;
    if (h.state === "queued") {
      action = el("button", { type: "button", "data-testid": "take-over", "data-key": `take:${h.id}`,
        "aria-label": `Take over hand-off: ${truncate(h.intent || h.reason, 60)} (${fmtDate(h.created_at)})`,
        onclick: () => openConversation(h, true) }, "Take over");
    } else {
      const label = h.state === "active" && (mine || senior) ? "Open" : "View";
      action = el("button", { type: "button", class: "secondary", "data-testid": "open-handoff", "data-key": `open:${h.id}`,
        "aria-label": `${label} conversation: ${truncate(h.intent || h.reason, 60)}`,
        onclick: () => openConversation(h, false) }, label);
    }
    return el("tr", { "data-testid": "handoff-row", "data-id": h.id, "data-state": h.state },
      el("td", {}, fmtDate(h.created_at)),
      el("td", {}, h.reason || DASH),
      el("td", {}, h.intent || DASH, isEmpty(h.entities) ? null : jsonDetails(h.entities, `entities:${h.id}`, 1000)),
      el("td", { class: "summary" }, h.summary || DASH,
        h.summary_by ? el("div", { class: "muted" }, `summary by ${h.summary_by}`) : null),
      el("td", {}, h.state, h.agent ? el("div", { class: "muted" }, mine ? "you" : h.agent) : null),
      el("td", {}, el("div", { class: "row-actions" }, action)));
  }

  let lastKey = null;
  const loadList = loader(ctx, async () => {
    const state = stateSel.value;
    const res = await api(`/v1/handoffs?state=${encodeURIComponent(state)}&limit=200`);
    return { state, items: (res && res.data) || [] };
  }, ({ state, items }) => {
    if (state !== stateSel.value || !convoView.hidden) return;
    const key = state + JSON.stringify(items);
    if (key === lastKey) return;
    lastKey = key;
    rerender(table, () => tbody.replaceChildren(...items.map(row)), heading);
    table.hidden = items.length === 0;
    status.textContent = items.length
      ? `${items.length} ${state} hand-off${items.length === 1 ? "" : "s"}.`
      : state === "queued" ? "Nothing waiting." : `No ${state} hand-offs.`;
  });

  let convoGen = 0;   // which conversation is on screen: late answers for an earlier one are dropped
  function showList() {
    convoGen++;
    convoView.hidden = true;
    convoView.replaceChildren();
    listView.hidden = false;
    lastKey = null;
    loadList(true);
    setTimer(() => loadList(), 5000);
    heading.focus();
  }

  stateSel.addEventListener("change", () => {
    lastKey = null;
    status.textContent = "Loading…";
    loadList(true);
  });

  async function openConversation(h, accept) {
    let handoff = h;
    if (accept) {
      try {
        handoff = { ...h, ...(await api(`/v1/handoffs/${encodeURIComponent(h.id)}/accept`, { method: "POST" })) };
      } catch (err) {
        ctx.banner(describe(err));
        lastKey = null;
        loadList(true);
        return;
      }
      if (!alive) return;
      ctx.banner("You have the session: the customer sees what you send.", "info");
    }
    const gen = ++convoGen;
    const current = () => alive && gen === convoGen;
    setTimer(null);
    listView.hidden = true;
    convoView.hidden = false;

    const titleId = uid("convo");
    const stateLine = el("p", { class: "status", role: "status" });
    const log = el("div", { class: "messages transcript", role: "log", "aria-live": "polite", "aria-labelledby": titleId,
      tabindex: "0", "data-testid": "transcript" }, el("p", { class: "status" }, "Loading the conversation…"));
    const textId = uid("reply");
    const text = el("textarea", { id: textId, rows: 3, maxlength: 20000, required: true, "data-testid": "handoff-message" });
    const send = el("button", { type: "submit", "data-testid": "send" }, "Send");
    const composer = el("form", { class: "composer", "data-testid": "handoff-composer" },
      el("label", { for: textId, class: "visually-hidden" }, "Message to the customer"), text, send);
    const closeBtn = el("button", { type: "button", class: "danger", "data-testid": "close-handoff",
      onclick: () => closeHandoff() }, "Close hand-off");
    const back = el("button", { type: "button", class: "secondary", "data-testid": "back", onclick: showList },
      "Back to the list");
    convoView.replaceChildren(
      el("div", { class: "row-actions" }, back, closeBtn),
      el("h2", { id: titleId, tabindex: "-1" }, `Conversation · ${handoff.intent || handoff.reason || "hand-off"}`),
      el("div", { class: "card" },
        el("p", {}, el("strong", {}, "Reason: "), handoff.reason || DASH),
        el("p", {}, el("strong", {}, "Summary: "), handoff.summary || DASH,
          handoff.summary_by ? el("span", { class: "muted" }, ` (by ${handoff.summary_by})`) : null),
        isEmpty(handoff.entities) ? null : jsonDetails(handoff.entities, "entities", 1500),
        el("p", { class: "muted", title: handoff.session_id }, `Session ${shortId(handoff.session_id)} · since ${fmtDate(handoff.created_at)}`)),
      stateLine, log, composer);
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        composer.requestSubmit();
      }
    });

    let messages = [];
    let lastSeq = 0;
    let lastRendered = null;

    function applyState(row) {
      handoff = { ...handoff, ...row };
      const mine = handoff.agent && handoff.agent === me.subject;
      const writable = handoff.state === "active" && (mine || senior);
      text.disabled = !writable;
      send.disabled = !writable;
      closeBtn.hidden = !writable;   // the API lets any agent close; the UI offers it to the holder (and seniors)
      composer.hidden = handoff.state === "closed";
      stateLine.textContent = handoff.state === "active"
        ? (mine ? "You have this session." : `${handoff.agent} has this session.`)
        : handoff.state === "closed" ? "Closed: the assistant has the session again." : "Waiting in the queue.";
    }
    applyState(handoff);

    function who(m) {
      if (m.role === "user") return "Customer";
      if (m.model && m.model.startsWith(AGENT_PREFIX)) {
        const name = m.model.slice(AGENT_PREFIX.length);
        return name === me.subject ? "You" : name;
      }
      return m.role === "assistant" ? "Assistant" : m.role;
    }

    function renderTranscript() {
      const key = JSON.stringify(messages);
      if (key === lastRendered) return;
      lastRendered = key;
      const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
      const shown = messages.filter((m) => m.content && m.role !== "tool");
      log.replaceChildren(...(shown.length ? shown.map((m) => {
        const mine = m.model && m.model === `${AGENT_PREFIX}${me.subject}`;
        const colleague = m.model && m.model.startsWith(AGENT_PREFIX);
        return el("div", { class: `msg${m.role === "user" ? " customer" : ""}${mine ? " mine" : colleague ? " colleague" : ""}`,
          "data-testid": "transcript-message", "data-role": m.role },
          el("div", { class: "meta" }, el("strong", {}, who(m)), el("span", {}, fmtDate(m.created_at))),
          el("div", { class: "text" }, m.content));
      }) : [el("p", { class: "status" }, "No messages yet.")]));
      if (nearBottom) log.scrollTop = log.scrollHeight;
    }

    // Incremental: ask for turns from the last seq seen (a turn's messages share its seq) and replace that tail.
    const refresh = loader(ctx, () => api(`/v1/handoffs/${encodeURIComponent(handoff.id)}?after_seq=${Math.max(0, lastSeq - 1)}`),
      (res) => {
        if (!current()) return;
        const tail = (res && res.transcript) || [];
        const from = lastSeq;
        messages = messages.filter((m) => m.seq < from).concat(tail);
        for (const m of tail) lastSeq = Math.max(lastSeq, m.seq || 0);
        const { transcript, ...row } = res || {};
        applyState(row);
        renderTranscript();
        if (handoff.state === "closed") {
          setTimer(null);
          refresh.stop();
        }
      });

    composer.addEventListener("submit", async (e) => {
      e.preventDefault();
      const content = text.value.trim();
      if (!content) {
        text.focus();
        return;
      }
      send.disabled = true;
      try {
        await api(`/v1/handoffs/${encodeURIComponent(handoff.id)}/messages`, { method: "POST", json: { content } });
        text.value = "";
        await refresh(true);
        log.scrollTop = log.scrollHeight;
      } catch (err) {
        ctx.banner(describe(err));
      } finally {
        applyState({});
        text.focus();
      }
    });

    async function closeHandoff() {
      closeBtn.disabled = true;
      try {
        await api(`/v1/handoffs/${encodeURIComponent(handoff.id)}/close`, { method: "POST" });
        ctx.banner("Hand-off closed: the assistant answers the customer again.", "info");
        refresh.stop();
        if (current()) showList();
      } catch (err) {
        ctx.banner(describe(err));
        closeBtn.disabled = false;
      }
    }

    const stopRefresh = () => refresh.stop();
    back.addEventListener("click", stopRefresh);
    await refresh(true);
    if (!current()) {
      refresh.stop();
      return;
    }
    log.scrollTop = log.scrollHeight;
    if (handoff.state !== "closed") setTimer(() => refresh(), 3000);
    if (!text.disabled) text.focus();
    else document.getElementById(titleId)?.focus();
  }

  loadList(true);
  setTimer(() => loadList(), 5000);
  return () => {
    alive = false;
    setTimer(null);
    loadList.stop();
  };
}

// -- 3. KPIs --------------------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null && v !== false) node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A horizontal bar chart as inline SVG: one row per {label, value, cls}; the text alternative lists every value. */
function barChart({ title, rows, max, format, testid }) {
  const rowH = 20;
  const gap = 6;
  const labelW = 230;
  const barW = 330;
  const valueW = 100;
  const pad = 6;
  const width = labelW + barW + valueW;
  const height = pad * 2 + Math.max(1, rows.length) * (rowH + gap) - gap;
  const top = max > 0 ? max : 1;
  const summary = `${title}: ${rows.map((r) => `${r.label} ${format(r.value)}`).join("; ") || "no data"}`;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", class: "chart", role: "img",
    "aria-label": summary, "data-testid": testid, preserveAspectRatio: "xMinYMin meet" },
  svg("title", {}, title));
  rows.forEach((r, i) => {
    const y = pad + i * (rowH + gap);
    const w = r.value == null ? 0 : Math.max(1, (Math.min(r.value, top) / top) * barW);
    chart.append(svg("text", { x: labelW - 8, y: y + rowH * 0.72, "text-anchor": "end", class: "bar-label" }, r.label));
    if (r.value != null) {
      chart.append(svg("rect", { x: labelW, y, width: w.toFixed(1), height: rowH, rx: 2, class: `bar${r.cls ? ` ${r.cls}` : ""}` },
        svg("title", {}, `${r.label}: ${format(r.value)}`)));
    }
    chart.append(svg("text", { x: labelW + w + 6, y: y + rowH * 0.72, class: "bar-label" }, format(r.value)));
  });
  return chart;
}

const STAGES = [
  ["ttft", "first token (chat)"],
  ["total", "whole answer"],
  ["voice_to_voice", "voice to voice"],
  ["stt", "speech to text"],
  ["first_token", "LLM first token"],
  ["tts_first_byte", "TTS first byte"],
];

function kpiCard(label, value, note, channel) {
  return el("div", { class: "card kpi", "data-testid": "kpi-card", "data-channel": channel || "all", "data-kpi": label },
    el("div", { class: "label" }, label),
    el("div", { class: "value" }, value),
    note ? el("div", { class: "muted" }, note) : null);
}

export function mountKpis(root, ctx) {
  const { section } = frame(root, "kpis", "KPIs");
  const { field: daysField, select: daysSel } = selectField("Period",
    [["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"]], "7", { "data-testid": "kpi-days" });
  const refreshBtn = el("button", { type: "button", class: "secondary", onclick: () => load(true) }, "Refresh");
  const status = el("p", { class: "status", role: "status" }, "Loading…");
  const body = el("div", { class: "stack" });
  section.append(el("div", { class: "filters" }, daysField, refreshBtn), status, body);

  function render(k) {
    const channels = k.channels || [];
    const period = Number(k.days) === 1 ? "the last 24 hours" : `the last ${k.days} days`;
    status.textContent = channels.length ? `Figures for ${period}.` : `No sessions in ${period}.`;
    const parts = [];
    parts.push(el("h2", {}, "Actions"),
      el("div", { class: "kpis" },
        kpiCard("Automation rate", pct(k.automation_rate),
          `${k.actions_executed ?? 0} action${k.actions_executed === 1 ? "" : "s"} executed; share with no human approval`)));
    for (const c of channels) {
      parts.push(el("h2", {}, `Channel: ${c.channel}`),
        el("div", { class: "kpis", "data-channel": c.channel },
          kpiCard("Containment", pct(c.containment_rate), `${c.sessions} session${c.sessions === 1 ? "" : "s"} without a hand-off`, c.channel),
          kpiCard("Escalation", pct(c.escalation_rate), "sessions handed to a person", c.channel),
          kpiCard("CSAT", pct(c.csat), `${c.ratings} rating${c.ratings === 1 ? "" : "s"}`, c.channel),
          kpiCard("Average handle time", duration(c.avg_handle_s), `${c.answers} answer${c.answers === 1 ? "" : "s"}`, c.channel)));
    }
    if (channels.length) {
      const latencyRows = [];
      for (const c of channels) {
        for (const [key, label] of STAGES) {
          const v = c.p95_ms ? c.p95_ms[key] : null;
          if (v != null) latencyRows.push({ label: `${c.channel} · ${label}`, value: v, cls: `stage-${key}` });
        }
      }
      const maxLatency = Math.max(0, ...latencyRows.map((r) => r.value));
      parts.push(el("h2", {}, "p95 latency per stage"),
        latencyRows.length
          ? el("div", { class: "card" }, barChart({ title: "p95 latency per stage and channel, milliseconds", rows: latencyRows,
            max: maxLatency, format: ms, testid: "latency-chart" }))
          : el("p", { class: "status" }, "No latency measured in this period."));
      const rateRows = [];
      for (const c of channels) {
        rateRows.push({ label: `${c.channel} · containment`, value: c.containment_rate, cls: "containment" });
        rateRows.push({ label: `${c.channel} · escalation`, value: c.escalation_rate, cls: "escalation" });
      }
      parts.push(el("h2", {}, "Containment and escalation"),
        el("div", { class: "card" }, barChart({ title: "Containment and escalation rate per channel", rows: rateRows, max: 1,
          format: pct, testid: "rates-chart" })));
    }
    body.replaceChildren(...parts);
  }

  const load = loader(ctx, async () => {
    const days = daysSel.value;
    return { days, k: await api(`/v1/kpis?days=${encodeURIComponent(days)}`) };
  }, ({ days, k }) => {
    if (days === daysSel.value) render(k || { days, channels: [] });
  });
  daysSel.addEventListener("change", () => {
    status.textContent = "Loading…";
    load(true);
  });
  load(true);
  return () => load.stop();
}

// -- 4. audit log ---------------------------------------------------------------------------------------------

function isoFromLocal(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function mountAudit(root, ctx) {
  const { section, heading } = frame(root, "audit", "Audit log");
  const from = inputField("From", { type: "datetime-local", name: "from" });
  const to = inputField("To (before)", { type: "datetime-local", name: "to" });
  const session = inputField("Session id", { type: "text", name: "session_id", spellcheck: "false", autocomplete: "off",
    placeholder: "optional", pattern: "[0-9a-fA-F\\-]{32,36}" });
  const { field: limitField, select: limitSel } = selectField("Entries per page",
    [["100", "100"], ["500", "500"], ["1000", "1000"]], "100");
  const action = inputField("Action contains", { type: "search", name: "action", placeholder: "e.g. review.", autocomplete: "off" });
  const actor = inputField("Actor contains", { type: "search", name: "actor", autocomplete: "off" });
  const form = el("form", { class: "filters", "data-testid": "audit-filters", "aria-label": "Audit filters" },
    from.field, to.field, session.field, limitField, el("button", { type: "submit" }, "Search"));
  const local = el("div", { class: "filters", role: "group", "aria-label": "Filter the loaded entries" },
    action.field, actor.field);
  const verifyBtn = el("button", { type: "button", class: "secondary", "data-testid": "audit-verify" }, "Verify chain");
  const verifyResult = el("p", { "data-testid": "audit-result", role: "status", "aria-live": "polite" });
  const status = el("p", { class: "status", role: "status" }, "Loading…");
  const tbody = el("tbody");
  const table = el("table", { hidden: true },
    el("caption", { class: "visually-hidden" }, "Audit entries"),
    headerRow("Seq", "Time", "Actor", "Action", "Session", "Content", "Hash"), tbody);
  const more = el("button", { type: "button", class: "secondary", hidden: true, "data-testid": "audit-more" }, "Load more");
  section.append(
    el("div", { class: "card stack" },
      el("p", { class: "hint" }, "Verification walks the whole hash chain and names the first entry that does not check out."),
      el("div", { class: "row-actions" }, verifyBtn), verifyResult),
    form,
    el("p", { class: "hint" }, "The server filters by time and session; action and actor filter the entries loaded here. Each search is itself audited."),
    local, status, table, more);

  let entries = [];
  let nextAfter = null;
  let query = "";

  function visible() {
    const a = action.input.value.trim().toLowerCase();
    const who = actor.input.value.trim().toLowerCase();
    return entries.filter((e) => (!a || String(e.action || "").toLowerCase().includes(a))
      && (!who || String(e.actor || "").toLowerCase().includes(who)));
  }

  function render() {
    const rows = visible();
    rerender(table, () => tbody.replaceChildren(...rows.map((e) => el("tr", { "data-testid": "audit-row", "data-seq": e.seq },
      el("td", {}, String(e.seq)),
      el("td", {}, fmtDate(e.ts)),
      el("td", {}, e.actor || DASH),
      el("td", {}, e.action || DASH),
      el("td", { title: e.session_id || "" }, e.session_id ? shortId(e.session_id) : DASH),
      el("td", {}, e.purged ? el("span", { class: "muted" }, "purged (tombstone)") : jsonDetails(e.content, `content:${e.seq}`)),
      el("td", { title: e.hash || "" }, el("code", {}, e.hash ? `${e.hash.slice(0, 12)}…` : DASH))))), heading);
    table.hidden = rows.length === 0;
    more.hidden = nextAfter == null;
    status.textContent = entries.length === 0 ? "No entries match."
      : rows.length === entries.length ? `${entries.length} entr${entries.length === 1 ? "y" : "ies"} loaded.`
        : `${rows.length} of ${entries.length} loaded entries match.`;
  }

  function buildQuery() {
    const p = new URLSearchParams();
    const f = isoFromLocal(from.input.value);
    const t = isoFromLocal(to.input.value);
    if (f) p.set("from", f);
    if (t) p.set("to", t);
    const sid = session.input.value.trim();
    if (sid) p.set("session_id", sid);
    p.set("limit", limitSel.value);
    return p;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    query = buildQuery().toString();
    status.textContent = "Loading…";
    search(false);
  });
  more.addEventListener("click", () => search(true));
  action.input.addEventListener("input", render);
  actor.input.addEventListener("input", render);

  let searching = 0;
  async function search(append) {
    const my = ++searching;
    more.disabled = true;
    try {
      const p = new URLSearchParams(query);
      if (append && nextAfter != null) p.set("after_seq", String(nextAfter));
      const q = query;
      const res = await api(`/v1/audit?${p}`);
      if (my !== searching || q !== query || !section.isConnected) return;
      const data = (res && res.data) || [];
      entries = append ? entries.concat(data) : data;
      nextAfter = res && res.next_after_seq != null ? res.next_after_seq : null;
      render();
    } catch (err) {
      if (section.isConnected) {
        ctx.banner(describe(err));
        status.textContent = "Could not load the audit log.";
      }
    } finally {
      more.disabled = false;
    }
  }

  verifyBtn.addEventListener("click", async () => {
    verifyBtn.disabled = true;
    verifyBtn.textContent = "Verifying…";
    verifyResult.className = "status";
    verifyResult.textContent = "Verifying the whole chain…";
    try {
      const r = await api("/v1/audit/verify", { method: "POST" });
      if (!section.isConnected) return;
      verifyResult.className = r.ok ? "ok" : "bad";
      verifyResult.setAttribute("data-ok", String(Boolean(r.ok)));
      const head = r.ok ? "✓ Chain intact. " : "✗ Chain broken. ";
      verifyResult.replaceChildren(el("strong", {}, head),
        r.message || (r.ok ? `${r.checked} entries checked (${r.tombstones} tombstones).`
          : `First bad entry: seq ${r.broken_seq}: ${r.reason || "unknown reason"}.`));
    } catch (err) {
      if (!section.isConnected) return;
      verifyResult.className = "bad";
      verifyResult.setAttribute("data-ok", "error");
      verifyResult.textContent = `Verification could not run: ${describe(err)}`;
    } finally {
      verifyBtn.disabled = false;
      verifyBtn.textContent = "Verify chain";
    }
  });

  query = buildQuery().toString();
  search(false);
  return () => {
    searching++;
  };
}

// -- 5. knowledge base ----------------------------------------------------------------------------------------

const COLLECTION_PATTERN = "[a-z0-9][a-z0-9_\\-]{0,62}";
const UPLOAD_STATUS = {
  created: "Added",
  replaced: "Replaced the earlier version of",
  unchanged: "Unchanged (the same file is already stored):",
  duplicate: "Not added: the same content is already stored as",
};

export function mountKnowledge(root, ctx) {
  const { section, heading } = frame(root, "knowledge", "Knowledge base");
  let xhr = null;
  let alive = true;

  // upload form
  const listId = uid("collections");
  const datalist = el("datalist", { id: listId });
  const collection = inputField("Collection", { type: "text", name: "collection", value: "default", required: true,
    pattern: COLLECTION_PATTERN, maxlength: 63, list: listId, autocomplete: "off", spellcheck: "false",
    "data-testid": "upload-collection" });
  const title = inputField("Title (optional)", { type: "text", name: "title", maxlength: 300 });
  const tags = inputField("Tags (comma-separated, optional)", { type: "text", name: "tags", maxlength: 1000 });
  const effective = inputField("Effective date (optional)", { type: "date", name: "effective_date" });
  const file = inputField("File", { type: "file", name: "file", required: true, "data-testid": "upload-file",
    accept: ".pdf,.docx,.html,.htm,.xhtml,.md,.markdown,.txt,.text" });
  const progress = el("progress", { max: 100, value: 0, "aria-label": "Upload progress", "data-testid": "upload-progress",
    hidden: true });
  const result = el("div", { "data-testid": "upload-result", role: "status", "aria-live": "polite" });
  const submit = el("button", { type: "submit", "data-testid": "upload-submit" }, "Upload");
  const cancel = el("button", { type: "button", class: "secondary", hidden: true, onclick: () => xhr && xhr.abort() },
    "Cancel upload");
  const formTitle = uid("upload");
  const form = el("form", { class: "card stack", "data-testid": "upload-form", "aria-labelledby": formTitle },
    el("h2", { id: formTitle }, "Upload a document"),
    el("p", { class: "hint" }, "PDF, Word (.docx), HTML, Markdown or text. A file with the same name in the collection replaces the earlier version."),
    el("div", { class: "filters" }, collection.field, file.field),
    el("div", { class: "filters" }, title.field, tags.field, effective.field),
    datalist,
    el("div", { class: "row-actions" }, submit, cancel),
    progress, result);
  collection.input.title = "Lower-case letters, digits, - and _ (up to 63 characters)";

  // documents
  const { field: filterField, select: filterSel } = selectField("Show collection", [["", "All collections"]], "",
    { "data-testid": "doc-collection" });
  const status = el("p", { class: "status", role: "status" }, "Loading…");
  const tbody = el("tbody");
  const table = el("table", { hidden: true },
    el("caption", { class: "visually-hidden" }, "Documents"),
    headerRow("Title", "Collection", "Format", "Chunks", "Version", "Tags", "Effective", "Updated", "Actions"), tbody);
  section.append(form, el("h2", {}, "Documents"), el("div", { class: "filters" }, filterField), status, table);

  function docRow(d) {
    const name = d.title || d.source_name || d.id;
    return el("tr", { "data-testid": "doc-row", "data-id": d.id },
      el("td", {}, el("strong", {}, name),
        d.source_name && d.source_name !== name ? el("div", { class: "muted" }, d.source_name) : null),
      el("td", {}, d.collection || DASH),
      el("td", {}, d.format || DASH),
      el("td", {}, d.chunk_count ?? DASH),
      el("td", {}, d.version ?? DASH),
      el("td", {}, d.tags && d.tags.length ? d.tags.join(", ") : DASH),
      el("td", {}, d.effective_date ? new Date(`${d.effective_date}T00:00:00`).toLocaleDateString() : DASH),
      el("td", {}, fmtDate(d.updated_at || d.created_at),
        d.created_by ? el("div", { class: "muted" }, `by ${d.created_by}`) : null),
      el("td", {}, el("div", { class: "row-actions" },
        el("button", { type: "button", class: "danger", "data-testid": "doc-delete", "data-key": `delete:${d.id}`,
          "aria-label": `Delete document ${name}`, onclick: () => remove(d, name) }, "Delete"))));
  }

  const loadDocs = loader(ctx, async () => {
    const c = filterSel.value;
    const res = await api(`/v1/knowledge/documents?limit=500${c ? `&collection=${encodeURIComponent(c)}` : ""}`);
    return { c, docs: (res && res.data) || [] };
  }, ({ c, docs }) => {
    if (c !== filterSel.value) return;
    rerender(table, () => tbody.replaceChildren(...docs.map(docRow)), heading);
    table.hidden = docs.length === 0;
    status.textContent = docs.length
      ? `${docs.length} document${docs.length === 1 ? "" : "s"}${docs.length >= 500 ? " (the first 500)" : ""}.`
      : "No documents yet.";
  });

  let collectionsLoaded = false;
  const loadCollections = loader(ctx, () => api("/v1/knowledge/collections"), (res) => {
    const names = ((res && res.data) || []).map((c) => c.name).filter(Boolean);
    datalist.replaceChildren(...names.map((n) => el("option", { value: n })));
    const current = filterSel.value;
    filterSel.replaceChildren(el("option", { value: "" }, "All collections"),
      ...(res.data || []).map((c) => el("option", { value: c.name }, `${c.name} (${c.documents ?? 0})`)));
    filterSel.value = names.includes(current) ? current : "";
    if (!collectionsLoaded) {
      collectionsLoaded = true;
      if (!names.includes("default") && names.length && collection.input.value === "default") collection.input.value = names[0];
    }
  });

  async function remove(d, name) {
    const ok = await ask(section, {
      title: `Delete “${truncate(name, 80)}”?`,
      body: [el("p", {}, `The document and its ${d.chunk_count ?? 0} chunks leave the collection “${d.collection}”; answers stop citing it.`)],
      confirm: "Delete", danger: true, testid: "delete-dialog",
    });
    if (!ok) return;
    try {
      await api(`/v1/knowledge/documents/${encodeURIComponent(d.id)}`, { method: "DELETE" });
      ctx.banner(`Deleted “${name}”.`, "info");
    } catch (err) {
      ctx.banner(describe(err));
    }
    await Promise.all([loadDocs(true), loadCollections(true)]);
    if (document.activeElement === document.body) heading.focus();
  }

  function showError(message) {
    result.className = "bad";
    result.replaceChildren(el("strong", {}, "Upload failed: "), message);
  }

  function showResult(body) {
    const doc = body.document || {};
    const name = doc.title || doc.source_name || "the document";
    const good = body.status === "created" || body.status === "replaced";
    result.className = good ? "ok" : "status";
    result.setAttribute("data-status", body.status || "");
    result.replaceChildren(
      el("p", {}, el("strong", {}, `${UPLOAD_STATUS[body.status] || body.status} `), `“${name}”`,
        doc.collection ? ` in “${doc.collection}”` : "", `: ${body.chunks ?? 0} chunk${body.chunks === 1 ? "" : "s"}.`),
      body.warnings && body.warnings.length
        ? el("ul", { class: "warnings", "aria-label": "Warnings" }, ...body.warnings.map((w) => el("li", {}, w))) : null);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (xhr) return;
    const chosen = file.input.files && file.input.files[0];
    if (!chosen) {
      file.input.focus();
      return;
    }
    const data = new FormData();
    data.append("collection", collection.input.value.trim() || "default");
    if (title.input.value.trim()) data.append("title", title.input.value.trim());
    if (tags.input.value.trim()) data.append("tags", tags.input.value.trim());
    if (effective.input.value) data.append("effective_date", effective.input.value);
    data.append("file", chosen, chosen.name);

    const request = new XMLHttpRequest();
    xhr = request;
    request.open("POST", "/v1/knowledge/documents");
    const t = token();
    if (t) request.setRequestHeader("Authorization", `Bearer ${t}`);
    request.setRequestHeader("Accept", "application/json");
    progress.hidden = false;
    progress.max = 100;
    progress.value = 0;
    result.className = "status";
    result.removeAttribute("data-status");
    result.textContent = `Uploading ${chosen.name}…`;
    submit.disabled = true;
    cancel.hidden = false;

    const done = () => {
      xhr = null;
      submit.disabled = false;
      cancel.hidden = true;
    };
    request.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) {
        progress.max = ev.total;
        progress.value = ev.loaded;
        if (ev.loaded >= ev.total) result.textContent = `Reading and indexing ${chosen.name}…`;
      } else {
        progress.removeAttribute("value");
      }
    });
    request.addEventListener("load", () => {
      done();
      if (!alive) return;
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        /* not JSON (a proxy's error page) */
      }
      if (request.status >= 200 && request.status < 300 && body) {
        progress.value = progress.max;
        showResult(body);
        form.reset();
        collection.input.value = body.document && body.document.collection ? body.document.collection : collection.input.value || "default";
        loadDocs(true);
        loadCollections(true);
        return;
      }
      const err = body && body.error ? body.error : {};
      const message = err.message
        ? `${err.message}${err.code ? ` (${err.code})` : ""}`
        : request.status === 413 ? "The file is too large." : `HTTP ${request.status} ${request.statusText || ""}`.trim();
      showError(message);
      if (request.status === 401) signOut("Your session expired. Sign in again.");
    });
    request.addEventListener("error", () => {
      done();
      if (alive) showError("The gateway cannot be reached. Check the connection and try again.");
    });
    request.addEventListener("abort", () => {
      done();
      if (!alive) return;
      progress.hidden = true;
      result.className = "status";
      result.textContent = "Upload cancelled.";
    });
    request.send(data);
  });

  filterSel.addEventListener("change", () => {
    status.textContent = "Loading…";
    loadDocs(true);
  });
  loadCollections(true);
  loadDocs(true);
  return () => {
    alive = false;
    if (xhr) xhr.abort();
    loadDocs.stop();
    loadCollections.stop();
  };
}
