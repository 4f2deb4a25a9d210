// KPIs per channel, with inline-SVG bar charts (createElementNS only).
// mountKpis(root, ctx) returns a cleanup function.

import { api, el } from "../api.js";
import { DASH, frame, loader, selectField } from "./common.js";

// -- 3. KPIs --------------------------------------------------------------------------------------------------

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
