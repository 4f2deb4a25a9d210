// Hand-offs: the queue, taking over a conversation, writing to the customer, closing.
// mountHandoffs(root, ctx) returns a cleanup function.

import { api, describe, el } from "../api.js";
import { DASH, fmtDate, frame, hasRole, headerRow, isEmpty, jsonDetails, loader, changingTable, selectField, shortId, truncate, uid } from "./common.js";

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

  const rows = changingTable(table, tbody, heading, row);
  const loadList = loader(ctx, async () => {
    const state = stateSel.value;
    const res = await api(`/v1/handoffs?state=${encodeURIComponent(state)}&limit=200`);
    return { state, items: (res && res.data) || [] };
  }, ({ state, items }) => {
    if (state !== stateSel.value || !convoView.hidden) return;
    if (!rows.show(items, state)) return;
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
    rows.reset();
    loadList(true);
    setTimer(() => loadList(), 5000);
    heading.focus();
  }

  stateSel.addEventListener("change", () => {
    rows.reset();
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
        rows.reset();
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
