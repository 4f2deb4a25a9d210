// The knowledge base: documents per collection, upload with progress (XMLHttpRequest), delete.
// mountKnowledge(root, ctx) returns a cleanup function (aborts an upload in flight).

import { api, describe, el, signOut, token } from "../api.js";
import { ask, DASH, fmtDate, frame, headerRow, inputField, loader, rerender, selectField, truncate, uid } from "./common.js";

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
