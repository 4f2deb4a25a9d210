// The audit log: search by period and session, filter locally, verify the hash chain.
// mountAudit(root, ctx) returns a cleanup function.

import { api, describe, el } from "../api.js";
import { DASH, fmtDate, frame, headerRow, inputField, jsonDetails, rerender, selectField, shortId } from "./common.js";

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
