// The review queue: pending approvals and flagged exchanges; approve / reject / dismiss (supervisor, admin).
// mountReview(root, ctx) returns a cleanup function.

import { api, describe, el } from "../api.js";
import { ask, DASH, fmtDate, frame, hasRole, headerRow, jsonDetails, loader, changingTable, selectField, shortId, truncate } from "./common.js";

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

  const rows = changingTable(table, tbody, heading, row);
  function render(items, state) {
    if (!rows.show(items, state)) return;
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
      rows.reset();
      await load(true);
      if (!section.contains(document.activeElement) || document.activeElement === document.body) heading.focus();
    }
  }

  stateSel.addEventListener("change", () => {
    rows.reset();
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
