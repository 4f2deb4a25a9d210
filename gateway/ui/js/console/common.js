// Helpers shared by the supervisor screens (review, hand-offs, KPIs, audit, knowledge).
// DOM is built with el() only: nothing a model, a customer or a document wrote becomes markup.

import { describe, el } from "../api.js";

// -- small helpers --------------------------------------------------------------------------------------------

let uidSeq = 0;
export const uid = (prefix) => `${prefix}-${++uidSeq}`;

export const hasRole = (me, ...roles) => roles.some((r) => ((me && me.roles) || []).includes(r));

export const DASH = "—";

export function fmtDate(x) {
  if (!x) return DASH;
  const d = new Date(x);
  return Number.isNaN(d.getTime()) ? String(x) : d.toLocaleString();
}

export function truncate(text, n) {
  const s = text == null ? "" : String(text);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : DASH);

export function isEmpty(obj) {
  return obj == null || (typeof obj === "object" && Object.keys(obj).length === 0);
}

/** A JSON value, pretty and truncated, folded into a <details> whose summary is its first characters. */
export function jsonDetails(value, key, max = 2000) {
  if (isEmpty(value)) return DASH;
  let pretty = JSON.stringify(value, null, 2);
  if (pretty.length > max) pretty = `${pretty.slice(0, max)}\n… (truncated)`;
  return el("details", { "data-key": key },
    el("summary", {}, truncate(JSON.stringify(value), 60)),
    el("pre", { class: "json" }, pretty));
}

/** A labelled <select>: returns {field, select}. */
export function selectField(label, options, value, attrs = {}) {
  const id = uid("sel");
  const select = el("select", { id, ...attrs },
    ...options.map(([v, text]) => el("option", { value: v, selected: String(v) === String(value) }, text)));
  select.value = String(value);
  return { field: el("div", { class: "field" }, el("label", { for: id }, label), select), select };
}

/** A labelled <input>: returns {field, input}. */
export function inputField(label, attrs = {}) {
  const id = uid("in");
  const input = el("input", { id, ...attrs });
  return { field: el("div", { class: "field" }, el("label", { for: id }, label), input), input };
}

export function headerRow(...labels) {
  return el("thead", {}, el("tr", {}, ...labels.map((h) => el("th", { scope: "col" }, h))));
}

/** The screen's frame: <section class="console" aria-labelledby> with its <h1>. */
export function frame(root, name, title) {
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
export function loader(ctx, fetcher, apply) {
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
/** A list's table that redraws only when its items changed (auto-refresh must not steal focus or close
 * what the person opened); `reset()` forces the next `show` to redraw. */
export function changingTable(table, tbody, heading, row) {
  let lastKey = null;
  return {
    show(items, key) {
      const k = key + JSON.stringify(items);
      if (k === lastKey) return false;
      lastKey = k;
      rerender(table, () => tbody.replaceChildren(...items.map(row)), heading);
      table.hidden = items.length === 0;
      return true;
    },
    reset() {
      lastKey = null;
    },
  };
}

export function rerender(container, build, fallbackFocus) {
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
export function ask(host, { title, body = [], noteLabel = null, required = false, confirm = "OK", danger = false, testid }) {
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
