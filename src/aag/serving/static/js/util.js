// DOM and formatting helpers. Data is only ever inserted as text (never as HTML).

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("td", {class: "x"}, "text", otherNode). */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Milliseconds since the epoch of an ISO 8601 time (null for none). */
export function ms(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** "2026-03-01 09:00 UTC" (seconds only when they are not zero). */
export function fmtTime(iso) {
  const t = ms(iso);
  if (t === null) return "—";
  const d = new Date(t).toISOString();
  const secs = d.slice(17, 19) !== "00" ? d.slice(16, 19) : "";
  return `${d.slice(0, 10)} ${d.slice(11, 16)}${secs} UTC`;
}

/** "2026-03-01 09:00" without the zone (for compact labels). */
export function fmtShort(iso) {
  const t = ms(iso);
  if (t === null) return "—";
  const d = new Date(t).toISOString();
  return `${d.slice(0, 10)} ${d.slice(11, 16)}`;
}

/** A duration in seconds as "4 min", "3 h", "271 d". */
export function fmtAge(seconds) {
  const n = Number(seconds);
  if (!Number.isFinite(n)) return "—";
  if (n < 90) return `${Math.round(n)} s`;
  if (n < 5400) return `${Math.round(n / 60)} min`;
  if (n < 172800) return `${Math.round(n / 3600)} h`;
  return `${Math.round(n / 86400)} d`;
}

export function fmtValue(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function truncate(text, max) {
  const str = String(text);
  return str.length > max ? `${str.slice(0, max - 1)}…` : str;
}

/** Approximate rendered width of a label (px) at a font size, for layout only. */
export function textWidth(text, size = 12) {
  return String(text).length * size * 0.58;
}

/** A message block for a panel; kind "error" is announced by screen readers. */
export function message(kind, text) {
  return kind === "error" ? h("p", { class: "error", role: "alert" }, text) : h("p", { class: "muted" }, text);
}
