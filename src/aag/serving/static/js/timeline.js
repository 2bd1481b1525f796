// One attribute's timeline: every version per source as bars on a time axis, each
// record the source sent as a mark under its lane, the winner marked, and the explanation.

import { h, s, clear, ms, fmtTime, fmtShort, fmtValue, truncate, textWidth } from "./util.js";
import { recordTime, fieldValue } from "./records.js";

const W = 1000;
const GUTTER = 120;
const RIGHT = 24;
const LANE = 58;
const AXIS = 30;
const DAY = 86400000;

/** Record-level sends of one source's rows carrying the attribute's fields, as marks. */
function sends(history, bronzeRows, source) {
  const fields = new Set(history.filter((v) => v.source_system === source).map((v) => v.source_field).filter(Boolean));
  const starts = new Set(history.filter((v) => v.source_system === source).map((v) => ms(v.updated_at)));
  const out = [];
  for (const b of bronzeRows.filter((r) => r.source_system === source)) {
    const { time, field: timeField } = recordTime(b);
    if (!time) continue;
    for (const field of fields) {
      const { found, value } = fieldValue(b, field);
      if (!found) continue;
      const empty = value === null || value === "";
      out.push({ time, timeField, field, value, changed: starts.has(ms(time)), empty, object: b.source_object });
      break;
    }
  }
  return out.sort((a, b) => ms(a.time) - ms(b.time));
}

/** Axis ticks for [t0, t1]: calendar years/months or fixed steps, at most ~8. */
function ticks(t0, t1) {
  const span = t1 - t0;
  const fixed = [60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, DAY, 2 * DAY, 7 * DAY, 14 * DAY];
  for (const step of fixed) {
    if (span / step <= 8) {
      const out = [];
      for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
      const fmt = step < DAY ? (t) => new Date(t).toISOString().slice(11, 16) : (t) => new Date(t).toISOString().slice(0, 10);
      return { list: out, fmt, sub: step < DAY ? new Date(t0).toISOString().slice(0, 10) : "" };
    }
  }
  for (const months of [1, 2, 3, 6, 12, 24, 60]) {
    if (span / (months * 30.4 * DAY) <= 8) {
      const out = [];
      const d = new Date(t0);
      let y = d.getUTCFullYear();
      let m = d.getUTCMonth() + 1;
      m = Math.ceil(m / months) * months;
      for (;;) {
        while (m >= 12) {
          m -= 12;
          y += 1;
        }
        const t = Date.UTC(y, m, 1);
        if (t > t1) break;
        if (t >= t0) out.push(t);
        m += months;
      }
      const fmt = months >= 12 ? (t) => new Date(t).toISOString().slice(0, 4) : (t) => new Date(t).toISOString().slice(0, 7);
      return { list: out, fmt, sub: "" };
    }
  }
  return { list: [t0, t1], fmt: (t) => new Date(t).toISOString().slice(0, 10), sub: "" };
}

/** The chart of `lanes` over the time window [t0, t1]. */
function chart({ lanes, t0, t1, title, winner, attribute }) {
  const height = AXIS + lanes.length * LANE + 8;
  const x = (t) => GUTTER + ((t - t0) / (t1 - t0)) * (W - GUTTER - RIGHT);
  const clampX = (t) => Math.min(Math.max(x(t), GUTTER), W - RIGHT);
  const svg = s("svg", { class: "timeline", viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  const axis = s("g", { class: "axis" });
  const tk = ticks(t0, t1);
  for (const t of tk.list) {
    axis.append(s("line", { x1: x(t), x2: x(t), y1: AXIS - 6, y2: height - 4, class: "grid" }));
    axis.append(s("text", { x: x(t), y: AXIS - 10, "text-anchor": "middle" }, tk.fmt(t)));
  }
  if (tk.sub) axis.append(s("text", { x: 8, y: AXIS - 10, class: "sub" }, tk.sub));
  svg.append(axis);

  lanes.forEach((lane, i) => {
    const top = AXIS + i * LANE;
    const g = s("g", { class: "lane", "data-source": lane.source });
    g.append(s("rect", { x: 0, y: top, width: W, height: LANE, class: i % 2 ? "band odd" : "band" }));
    g.append(s("text", { x: 8, y: top + 24, class: "lane-name" }, lane.source));
    g.append(s("text", { x: 8, y: top + 40, class: "lane-sub" }, lane.role));
    for (const v of lane.versions) {
      const start = ms(v.updated_at);
      const end = v.valid_to ? ms(v.valid_to) : t1;
      if (end < t0 || start > t1) continue;
      const x0 = clampX(start);
      const x1 = clampX(end);
      const isWinner = v.is_current && winner && v.source_system === winner.source_system && v.value === winner.value;
      const agrees = !isWinner && v.is_current && winner && v.value === winner.value;
      const cls = isWinner ? "win" : agrees ? "agree" : v.is_current ? "current" : "past";
      const bar = s("g", { class: `version ${cls}`, "data-value": v.value });
      bar.append(
        s("title", {}, `${v.source_system}: ${v.value}\nfrom ${fmtTime(v.updated_at)} to ${v.valid_to ? fmtTime(v.valid_to) : "now (current)"}${isWinner ? "\nwinner" : ""}`),
      );
      bar.append(s("rect", { x: x0, y: top + 8, width: Math.max(x1 - x0, 3), height: 22, rx: 3 }));
      if (start < t0) bar.append(s("text", { x: x0 + 3, y: top + 23, class: "cut" }, "◀"));
      const label = `${isWinner ? "★ " : ""}${v.value}`;
      const room = x1 - x0 - (start < t0 ? 22 : 8);
      const fits = Math.floor(room / (12 * 0.6));
      if (fits >= 4) bar.append(s("text", { x: x0 + (start < t0 ? 18 : 6), y: top + 23, class: "bar-label" }, truncate(label, fits)));
      if (!v.valid_to) bar.append(s("text", { x: W - RIGHT + 4, y: top + 23, class: "arrow" }, "▶"));
      g.append(bar);
    }
    for (const mark of lane.marks) {
      const t = ms(mark.time);
      if (t < t0 || t > t1) continue;
      const mx = x(t);
      const my = top + 44;
      const cls = mark.empty ? "empty" : mark.changed ? "changed" : "resync";
      const what = mark.empty ? "field sent empty" : mark.changed ? "field changed" : `${mark.field} unchanged`;
      g.append(
        s(
          "g",
          { class: `mark ${cls}` },
          s("title", {}, `${lane.source} sent the record at ${fmtTime(mark.time)} (${mark.timeField}): ${mark.field} = ${fmtValue(mark.value)} — ${what}`),
          s("path", { d: `M${mx},${my - 6} L${mx + 6},${my} L${mx},${my + 6} L${mx - 6},${my} Z` }),
        ),
      );
      if (mark.note) {
        // Beside the mark, on a side where it covers no other mark; left out if neither is free.
        const text = `${mark.note} ${fmtShort(mark.time)}`;
        const width = textWidth(text, 11) + 12;
        const others = lane.marks.filter((m) => m !== mark).map((m) => x(ms(m.time)));
        const free = (a, b) => a >= GUTTER && b <= W - RIGHT && others.every((ox) => ox < a - 8 || ox > b + 8);
        if (free(mx + 10, mx + width)) g.append(s("text", { x: mx + 10, y: my + 4, class: "mark-note" }, text));
        else if (free(mx - width, mx - 10)) g.append(s("text", { x: mx - 10, y: my + 4, "text-anchor": "end", class: "mark-note" }, text));
      }
    }
    svg.append(g);
  });
  return svg;
}

/**
 * Render the timeline and explanation of one attribute.
 * @param explain the /explain response (winner, losers, history, rule)
 * @param bronzeRows the customer's bronze rows
 */
export function renderTimeline(container, explain, bronzeRows) {
  clear(container);
  const { winner, losers = [], history = [], attribute } = explain;
  if (!history.length) {
    container.append(h("p", { class: "muted" }, `No source holds a ${attribute} for this customer.`));
    return;
  }
  const sources = [];
  const push = (src) => src && !sources.includes(src) && sources.push(src);
  push(winner && winner.source_system);
  losers.forEach((l) => push(l.source_system));
  history.forEach((v) => push(v.source_system));
  const loserBy = new Map(losers.map((l) => [l.source_system, l]));
  const lanes = sources.map((source) => {
    const versions = history.filter((v) => v.source_system === source).sort((a, b) => ms(a.updated_at) - ms(b.updated_at));
    const marks = sends(history, bronzeRows, source);
    const current = versions.find((v) => v.is_current);
    // A record sent later than the field's current version, with the field unchanged: the
    // record-level sync that does not make the value newer.
    // Only the latest one is written next to its mark (the others have tooltips).
    const resyncs = marks.filter((m) => current && !m.changed && !m.empty && ms(m.time) > ms(current.updated_at));
    if (resyncs.length) resyncs[resyncs.length - 1].note = `record re-sent, ${resyncs[0].field} unchanged:`;
    const role = winner && source === winner.source_system ? "winner" : loserBy.has(source) ? (loserBy.get(source).kind === "agrees" ? "agrees" : "loses") : "no current value";
    return { source, versions, marks, role, current };
  });

  const times = [];
  for (const lane of lanes) {
    lane.versions.forEach((v) => times.push(ms(v.updated_at), ms(v.valid_to)));
    lane.marks.forEach((m) => times.push(ms(m.time)));
  }
  const known = times.filter((t) => t !== null);
  let t0 = Math.min(...known);
  let t1 = Math.max(...known);
  const pad = Math.max((t1 - t0) * 0.06, DAY);
  const whole = { t0: t0 - pad, t1: t1 + pad };

  const figure = h("figure", { class: "timeline-figure" });
  figure.append(chart({ lanes, ...whole, winner, attribute, title: `${attribute}: every version per source, whole history` }));

  // The decisive moment: the winner's change and the later record sends, when they are
  // too close together to tell apart on the whole history's axis.
  if (winner) {
    const w = ms(winner.updated_at);
    const near = [...new Set(known.filter((t) => t >= w - DAY && t <= w + 7 * DAY))];
    t0 = Math.min(...near);
    t1 = Math.max(...near);
    const nearPad = Math.max((t1 - t0) * 0.35, 5 * 60e3);
    if (near.length > 1 && (t1 - t0 + 2 * nearPad) / (whole.t1 - whole.t0) < 0.05) {
      figure.append(h("h3", { class: "zoom-title" }, `Around the winner’s change (${fmtShort(new Date(t0 - nearPad).toISOString())} – ${fmtShort(new Date(t1 + nearPad).toISOString())} UTC)`));
      figure.append(chart({ lanes, t0: t0 - nearPad, t1: t1 + nearPad, winner, attribute, title: `${attribute}: versions around the winner's change` }));
    }
  }
  figure.append(
    h(
      "figcaption",
      { class: "legend-line" },
      h("span", { class: "key" }, h("span", { class: "swatch win" }), "winner"),
      h("span", { class: "key" }, h("span", { class: "swatch agree" }), "same value, another source"),
      h("span", { class: "key" }, h("span", { class: "swatch current" }), "current value that loses"),
      h("span", { class: "key" }, h("span", { class: "swatch past" }), "earlier version"),
      h("span", { class: "key" }, h("span", { class: "mark-key changed" }, "◆"), "record sent, field changed"),
      h("span", { class: "key" }, h("span", { class: "mark-key resync" }, "◇"), "record sent, field unchanged (a re-sync)"),
    ),
  );
  container.append(figure);
  container.append(explanation(explain, lanes));
  container.append(versionsTable(explain, history));
}

function explanation(explain, lanes) {
  const { winner, losers = [], rule, attribute } = explain;
  const box = h("div", { class: "explain" });
  box.append(h("p", { class: "rule" }, h("strong", {}, "Rule: "), rule));
  if (!winner) return box;
  box.append(
    h(
      "div",
      { class: "verdict win" },
      h("h3", {}, "Winner"),
      h(
        "p",
        {},
        h("strong", { class: "winner-value" }, winner.value), " from ", h("strong", {}, winner.source_system),
        ` — ${attribute} changed there at ${fmtTime(winner.updated_at)} (confidence ${winner.confidence}, priority ${winner.priority ?? "—"}): ${winner.why_won}.`,
      ),
      h("p", { class: "event" }, `event ${winner.source_event_id}`),
    ),
  );
  const wt = ms(winner.updated_at);
  // The latest record any source sent: what a "latest record wins" view would trust.
  const lastSend = Math.max(...lanes.flatMap((l) => l.marks.map((m) => ms(m.time))), -Infinity);
  const agreeing = losers.filter((l) => l.kind === "agrees");
  for (const loser of losers.filter((l) => !agreeing.includes(l))) {
    const lane = lanes.find((l) => l.source === loser.source_system);
    const later = lane ? lane.marks.filter((m) => !m.changed && !m.empty && ms(m.time) > wt) : [];
    const resent = later.length ? later[later.length - 1] : null;
    const items = [h("h3", {}, `Why ${loser.value} from ${loser.source_system} lost`), h("p", { class: "why-lost" }, loser.why_lost)];
    if (resent) {
      items.push(
        h(
          "p",
          { class: "resync" },
          `${loser.source_system} re-sent the whole ${resent.object} record at ${fmtTime(resent.time)} (its ${resent.timeField}), after ${winner.source_system}’s change — `,
          `but ${resent.field} in it was unchanged (${fmtValue(resent.value)}), so AAG kept the time that field itself last changed, ${fmtTime(loser.updated_at)}.`,
          ms(resent.time) >= lastSend ? ` A record-level “latest record wins” view would have taken ${loser.value} from ${loser.source_system} here.` : "",
        ),
      );
    }
    box.append(h("div", { class: "verdict lose" }, items));
  }
  if (agreeing.length) {
    const names = agreeing.map((l) => l.source_system);
    box.append(
      h(
        "div",
        { class: "verdict agree" },
        h("p", {}, `${names.join(", ")} ${names.length > 1 ? "hold" : "holds"} the same value (${winner.value}) and ${names.length > 1 ? "agree" : "agrees"} with the winner.`),
      ),
    );
  }
  return box;
}

function versionsTable(explain, history) {
  const { winner } = explain;
  const rows = [...history]
    .sort((a, b) => a.source_system.localeCompare(b.source_system) || ms(a.updated_at) - ms(b.updated_at))
    .map((v) => {
      const isWinner = v.is_current && winner && v.source_system === winner.source_system && v.value === winner.value;
      return h(
        "tr",
        { class: isWinner ? "win" : "" },
        h("td", {}, v.source_system),
        h("td", {}, v.value),
        h("td", {}, fmtTime(v.updated_at)),
        h("td", {}, v.valid_to ? fmtTime(v.valid_to) : "current"),
        h("td", {}, isWinner ? "winner" : v.is_current ? "loses" : "—"),
        h("td", {}, v.source_field || "—"),
        h("td", { class: "event" }, v.source_event_id || "—"),
      );
    });
  return h(
    "details",
    { class: "versions" },
    h("summary", {}, `All ${history.length} versions as a table`),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Source", "Value", "Field changed", "Until", "Profile", "Source field", "Event"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows),
      ),
    ),
  );
}
