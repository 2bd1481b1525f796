// The monitoring panel: freshness per source, open conflicts, completeness, quarantine.

import { h, s, clear, fmtTime, fmtAge, truncate, textWidth } from "./util.js";

/** A horizontal bar chart (SVG) of rows {label, value, text}. */
function barChart(rows, { title, gutter = 130, cls = "" }) {
  const W = 560;
  const ROW = 26;
  const textRoom = Math.min(Math.max(...rows.map((r) => textWidth(r.text, 12))) + 12, W - gutter - 60);
  const height = rows.length * ROW + 8;
  const max = Math.max(...rows.map((r) => r.value), 1e-9);
  const svg = s("svg", { class: `bars ${cls}`, viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  rows.forEach((r, i) => {
    const y = 4 + i * ROW;
    const width = Math.max((r.value / max) * (W - gutter - textRoom), r.value > 0 ? 2 : 0);
    svg.append(
      s(
        "g",
        { class: `bar ${r.cls || ""}` },
        s("title", {}, `${r.label}: ${r.text}`),
        s("text", { x: gutter - 8, y: y + 16, "text-anchor": "end", class: "bar-name" }, truncate(r.label, Math.floor(gutter / 7.2))),
        s("rect", { x: gutter, y: y + 4, width, height: ROW - 10, rx: 2 }),
        s("text", { x: gutter + width + 6, y: y + 16, class: "bar-text" }, r.text),
      ),
    );
  });
  return svg;
}

function plainTable(headers, rows) {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
    ),
  );
}

function freshness(rows) {
  const section = h("section", { class: "panel", "aria-labelledby": "fresh-title", id: "monitor-freshness" }, h("h3", { id: "fresh-title" }, "Freshness per source"));
  if (!rows.length) {
    section.append(h("p", { class: "muted" }, "Nothing landed yet."));
    return section;
  }
  const sorted = [...rows].sort((a, b) => a.source_system.localeCompare(b.source_system));
  section.append(
    h("p", { class: "muted" }, "Time since each source’s latest field change (bar), and since its latest landed batch."),
    barChart(
      sorted.map((r) => ({
        label: r.source_system,
        value: Number(r.event_lag_seconds) || 0,
        text: `${fmtAge(r.event_lag_seconds)} · landed ${fmtAge(r.landing_lag_seconds)} ago`,
      })),
      { title: "Freshness: time since each source's latest field change", cls: "fresh" },
    ),
    h(
      "details",
      {},
      h("summary", {}, "Freshness as a table"),
      plainTable(
        ["Source", "Latest field change", "Latest landing", "Batches", "Rows landed"],
        sorted.map((r) => [r.source_system, fmtTime(r.latest_event_at), fmtTime(r.latest_landing_at), String(r.batches), String(Number(r.rows_landed))]),
      ),
    ),
  );
  return section;
}

function conflicts(rows) {
  const section = h("section", { class: "panel", "aria-labelledby": "conflict-title", id: "monitor-conflicts" }, h("h3", { id: "conflict-title" }, "Open conflicts"));
  if (!rows.length) {
    section.append(h("p", { class: "ok" }, "No open conflicts: every source with a current value agrees."));
    return section;
  }
  const sorted = [...rows].sort((a, b) => b.customers - a.customers || a.attribute.localeCompare(b.attribute));
  const top = sorted.slice(0, 10);
  section.append(
    h("p", { class: "muted" }, "Customers for whom two sources currently hold different values (top pairs)."),
    barChart(
      top.map((r) => ({ label: `${r.attribute}: ${r.source_a} ↔ ${r.source_b}`, value: Number(r.customers), text: `${r.customers}` })),
      { title: "Open conflicts: customers per attribute and source pair", gutter: 280, cls: "conflict" },
    ),
    h(
      "details",
      {},
      h("summary", {}, `All ${rows.length} conflicting pairs as a table`),
      plainTable(["Attribute", "Source A", "Source B", "Customers"], sorted.map((r) => [r.attribute, r.source_a, r.source_b, String(r.customers)])),
    ),
  );
  return section;
}

function completeness(rows) {
  const section = h("section", { class: "panel wide", "aria-labelledby": "complete-title", id: "monitor-completeness" }, h("h3", { id: "complete-title" }, "Completeness"));
  if (!rows.length) {
    section.append(h("p", { class: "muted" }, "No customers yet."));
    return section;
  }
  const attributes = [...new Set(rows.map((r) => r.attribute))];
  const sources = ["any", ...[...new Set(rows.map((r) => r.source_system))].filter((x) => x !== "any").sort()];
  const cell = new Map(rows.map((r) => [`${r.attribute}|${r.source_system}`, r]));
  const of = rows[0].of_customers;
  section.append(
    h("p", { class: "muted" }, `Share of the ${of} customers with a current value, per attribute and source (“any”: from at least one source).`),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "heat" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Attribute"), sources.map((src) => h("th", { scope: "col" }, src)))),
        h(
          "tbody",
          {},
          attributes.map((a) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, a),
              sources.map((src) => {
                const r = cell.get(`${a}|${src}`);
                const share = r ? Number(r.share) : 0;
                const pct = `${Math.round(share * 100)}%`;
                return h("td", { class: r ? `heat-${Math.round(share * 10)}` : "heat-none", title: r ? `${r.customers} of ${r.of_customers}` : "no values from this source" }, r ? pct : "–");
              }),
            ),
          ),
        ),
      ),
    ),
  );
  return section;
}

function quarantine(rows) {
  const section = h("section", { class: "panel wide", "aria-labelledby": "quarantine-title", id: "monitor-quarantine" }, h("h3", { id: "quarantine-title" }, "Quarantine"));
  if (!rows.length) {
    section.append(h("p", { class: "ok" }, "No rows in quarantine."));
    return section;
  }
  section.append(
    plainTable(
      ["Source", "Object", "Level", "Entries", "Batches", "Latest"],
      rows.map((r) => [r.source_system, r.source_object, r.level, String(r.entries), String(r.batches), fmtTime(r.latest_at)]),
    ),
  );
  return section;
}

export function renderMonitor(container, report) {
  clear(container);
  container.append(
    h("p", { class: "muted" }, `Checked ${fmtTime(report.checked_at)}.`),
    h(
      "div",
      { class: "panels" },
      freshness(report.freshness || []),
      conflicts(report.conflicts || []),
      completeness(report.completeness || []),
      quarantine(report.quarantine || []),
    ),
  );
}
