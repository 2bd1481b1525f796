// The explorer page: key, search, and one customer from bronze to silver to gold.

import { api, enc, getKey, setKey, forgetKey, fragment, takeKeyFromFragment, NO_KEY } from "./api.js";
import { h, clear, fmtTime, fmtValue, ms, message } from "./util.js";
import { renderGraph } from "./graph.js";
import { renderTimeline } from "./timeline.js";
import { renderMonitor } from "./monitor.js";
import { recordTime } from "./records.js";

const $ = (sel) => document.querySelector(sel);

const state = {
  attributes: null, // canonical attributes in profile order
  customer: null, // {id, profile, bronze, graph}
  attribute: null,
  loading: 0, // a counter that lets a newer customer load win over an older one
};

function showKeyStatus() {
  const key = getKey();
  $("#key-status").textContent = key ? "A key is set (kept in this tab’s session storage only)." : "No key yet: every request needs one.";
  $("#key-input").value = "";
}

async function attributes() {
  if (!state.attributes) state.attributes = (await api("/v1/attributes")).attributes;
  return state.attributes;
}

// -- search -------------------------------------------------------------------------------

function searchError(text) {
  const box = $("#search-error");
  box.textContent = text;
  box.hidden = !text;
}

async function search(query) {
  searchError("");
  const results = clear($("#search-results"));
  if (!getKey()) {
    searchError(NO_KEY);
    $("#key-input").focus();
    return;
  }
  results.append(h("p", { class: "muted" }, "Searching…"));
  let found;
  try {
    found = await api(`/v1/search?q=${enc(query)}`);
  } catch (err) {
    clear(results);
    searchError(err.message);
    return;
  }
  clear(results);
  if (!found.results.length) {
    results.append(h("p", { class: "muted" }, `No customer matches “${query}”.`));
    return;
  }
  results.append(
    h("p", { class: "muted" }, `${found.results.length} customer${found.results.length > 1 ? "s" : ""} found:`),
    h(
      "ul",
      { class: "results" },
      found.results.map((r) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#customer=${enc(r.customer_id)}`, class: "result", "data-customer": r.customer_id },
            h("strong", {}, r.full_name || "(no name)"),
            " ",
            h("span", {}, r.email || ""),
            " ",
            h("span", { class: "muted" }, `matched by ${r.matched_by} · ${r.customer_id}`),
          ),
        ),
      ),
    ),
  );
  if (found.results.length === 1) location.hash = `customer=${enc(found.results[0].customer_id)}`;
}

// -- one customer -------------------------------------------------------------------------

function panel(id) {
  return $(`#${id} .body`);
}

function busy(id, on) {
  $(`#${id}`).setAttribute("aria-busy", on ? "true" : "false");
}

async function openCustomer(id) {
  const ticket = ++state.loading;
  $("#customer").hidden = false;
  for (const p of ["gold", "graph", "bronze", "timeline"]) {
    busy(p, true);
    clear(panel(p)).append(h("p", { class: "muted" }, "Loading…"));
  }
  clear($("#timeline .attr-picker"));
  $("#timeline-attr").textContent = "";
  state.attribute = null;
  state.customer = null;
  let profile;
  try {
    profile = await api(`/v1/customers/${enc(id)}?version=2`);
  } catch (err) {
    if (ticket !== state.loading) return;
    for (const p of ["gold", "graph", "bronze", "timeline"]) {
      busy(p, false);
      clear(panel(p)).append(message("error", p === "gold" ? `Could not load customer ${id}: ${err.message}` : "—"));
    }
    return;
  }
  if (ticket !== state.loading) return;
  const customerId = profile.profile.customer_id;
  const attrs = await attributes().catch(() => []);
  state.customer = { id: customerId, profile, bronze: null, graph: null };
  renderGold(profile, attrs);
  busy("gold", false);
  $("#gold-title").focus();

  const [bronze, graph] = await Promise.allSettled([
    api(`/v1/customers/${enc(customerId)}/bronze`),
    api(`/v1/entities/${enc(customerId)}/graph?hops=2`),
  ]);
  if (ticket !== state.loading) return;
  state.customer.bronze = bronze.status === "fulfilled" ? bronze.value.rows : [];
  if (bronze.status === "fulfilled") renderBronze(panel("bronze"), bronze.value.rows);
  else clear(panel("bronze")).append(message("error", bronze.reason.message));
  busy("bronze", false);
  // A timeline opened before the bronze rows came lacks the re-sync marks: draw it again.
  if (state.attribute) showAttribute(state.attribute, false);
  if (graph.status === "fulfilled") {
    state.customer.graph = graph.value;
    renderGraph(panel("graph"), graph.value, attrs, (a) => showAttribute(a, true));
  } else clear(panel("graph")).append(message("error", graph.reason.message));
  busy("graph", false);

  renderPicker(attrs);
  // An attribute chosen while the lineage loaded is drawn again, now with the bronze marks.
  const wanted = state.attribute || fragment().get("attribute");
  await showAttribute(attrs.includes(wanted) ? wanted : firstContested(attrs), false);
}

/** The first attribute whose sources hold different current values, else the first one. */
function firstContested(attrs) {
  const graph = state.customer && state.customer.graph;
  if (graph) {
    const customers = new Set(graph.nodes.filter((n) => n.node_type === "customer").map((n) => n.node_id));
    for (const a of attrs) {
      const rel = `HAS_${a.toUpperCase()}`;
      const held = graph.edges.filter((e) => e.rel_type === rel && customers.has(e.source_node_id));
      const winners = new Set(held.filter((e) => e.winner).map((e) => e.target_node_id));
      if (held.some((e) => !winners.has(e.target_node_id))) return a;
    }
  }
  return attrs[0];
}

function renderGold(response, attrs) {
  const body = clear(panel("gold"));
  const p = response.profile;
  const rows = attrs.map((a) =>
    h(
      "tr",
      { "data-attribute": a },
      h("th", { scope: "row" }, h("button", { type: "button", class: "link", "aria-label": `Timeline of ${a}`, onclick: () => showAttribute(a, true) }, a)),
      h("td", { class: "value" }, p[a] === null || p[a] === undefined ? h("span", { class: "muted" }, "—") : fmtValue(p[a])),
      h("td", {}, p[`${a}_source`] || "—"),
      h("td", {}, fmtTime(p[`${a}_updated_at`])),
    ),
  );
  body.append(
    h(
      "p",
      { class: "meta" },
      h("span", {}, "Customer "), h("code", { id: "customer-id" }, p.customer_id),
      ` · served from ${response.served_from}${response.gold_built_at ? ` · gold built ${fmtTime(response.gold_built_at)}` : ""}`,
    ),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "gold-table" },
        h("caption", { class: "visually-hidden" }, "Gold profile (version 2): each attribute’s value, the source it came from and when that field changed there"),
        h("thead", {}, h("tr", {}, ["Attribute", "Value", "Source", "Field changed at (in that source)"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows),
      ),
    ),
  );
}

function renderPicker(attrs) {
  const picker = clear($("#timeline .attr-picker"));
  for (const a of attrs) {
    picker.append(h("button", { type: "button", class: "chip", "data-attribute": a, "aria-pressed": "false", onclick: () => showAttribute(a, false) }, a));
  }
}

async function showAttribute(attribute, scroll) {
  if (!state.customer) return;
  state.attribute = attribute;
  const ticket = state.loading;
  for (const b of document.querySelectorAll("#timeline .chip")) b.setAttribute("aria-pressed", String(b.dataset.attribute === attribute));
  for (const tr of document.querySelectorAll("#gold tr[data-attribute]")) tr.classList.toggle("selected", tr.dataset.attribute === attribute);
  $("#timeline-attr").textContent = `· ${attribute}`;
  history.replaceState(null, "", `#customer=${enc(state.customer.id)}&attribute=${enc(attribute)}`);
  const body = panel("timeline");
  busy("timeline", true);
  if (scroll) $("#timeline").scrollIntoView({ block: "start" });
  try {
    const explain = await api(`/v1/customers/${enc(state.customer.id)}/attributes/${enc(attribute)}/explain`);
    if (ticket !== state.loading || state.attribute !== attribute) return;
    renderTimeline(body, explain, state.customer.bronze || []);
  } catch (err) {
    if (ticket !== state.loading || state.attribute !== attribute) return;
    clear(body).append(message(err.status === 404 ? "muted" : "error", err.status === 404 ? `No ${attribute} for this customer (${err.message}).` : err.message));
  }
  busy("timeline", false);
}

// -- bronze ---------------------------------------------------------------------------------

function renderBronze(body, rows) {
  clear(body);
  if (!rows.length) {
    body.append(h("p", { class: "muted" }, "No bronze rows for this customer."));
    return;
  }
  const groups = new Map();
  for (const r of rows) {
    const key = `${r.source_system} · ${r.source_object}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  for (const [name, list] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const when = (r) => ms(recordTime(r).time) ?? ms(r.landed_at);
    list.sort((a, b) => String(a.record_id).localeCompare(String(b.record_id)) || when(a) - when(b) || ms(a.landed_at) - ms(b.landed_at));
    const columns = [];
    for (const r of list) for (const k of Object.keys(r.row || {})) if (!columns.includes(k)) columns.push(k);
    const previous = new Map();
    const trs = list.map((r) => {
      const before = previous.get(r.record_id);
      previous.set(r.record_id, r.row);
      return h(
        "tr",
        {},
        columns.map((c) => {
          const value = (r.row || {})[c];
          const changed = before && JSON.stringify(before[c]) !== JSON.stringify(value);
          return h(
            "td",
            { class: `${changed ? "changed" : ""}${value === null || value === undefined ? " null" : ""}`.trim() || null },
            value === undefined ? "" : fmtValue(value),
            changed ? h("span", { class: "visually-hidden" }, " (changed)") : null,
          );
        }),
        h("td", { class: "meta-cell" }, fmtTime(r.landed_at)),
        h("td", { class: "meta-cell" }, h("code", {}, String(r.batch_id).slice(0, 12))),
      );
    });
    const id = `bronze-${name.replace(/[^a-z0-9]+/gi, "-")}`;
    body.append(
      h(
        "section",
        { class: "bronze-source", "aria-labelledby": id, "data-source": list[0].source_system },
        h("h3", { id }, `${name}`, h("span", { class: "count" }, ` ${list.length} row${list.length > 1 ? "s" : ""}`)),
        h(
          "div",
          { class: "scroll" },
          h(
            "table",
            { class: "raw" },
            h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)), h("th", { scope: "col", class: "meta-cell" }, "landed"), h("th", { scope: "col", class: "meta-cell" }, "batch"))),
            h("tbody", {}, trs),
          ),
        ),
      ),
    );
  }
}

// -- monitoring ----------------------------------------------------------------------------

async function loadMonitor() {
  const body = panel("monitor");
  if (!getKey()) {
    clear(body).append(message("muted", "Enter an API key to see freshness, conflicts and completeness."));
    return;
  }
  busy("monitor", true);
  try {
    renderMonitor(body, await api("/v1/monitor"));
  } catch (err) {
    clear(body).append(message("error", err.message));
  }
  busy("monitor", false);
}

async function loadStatus() {
  const line = $("#status-line");
  if (!getKey()) {
    line.textContent = "";
    return;
  }
  try {
    const st = await api("/v1/status");
    line.textContent = `${st.warehouse} · ${st.gold_customers} customers in gold · built ${fmtTime(st.gold_built_at)}`;
  } catch (err) {
    line.textContent = err.message;
  }
}

// -- wiring --------------------------------------------------------------------------------

function route() {
  takeKeyFromFragment();
  showKeyStatus();
  const id = fragment().get("customer");
  if (id && getKey() && (!state.customer || state.customer.id !== id)) openCustomer(id);
  else if (id && !getKey()) searchError(NO_KEY);
}

function start() {
  const hadKey = takeKeyFromFragment();
  showKeyStatus();
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("#key-input").value.trim();
    if (!key) {
      $("#key-status").textContent = "Paste a key first.";
      return;
    }
    setKey(key);
    state.attributes = null;
    showKeyStatus();
    searchError("");
    loadMonitor();
    loadStatus();
    const id = fragment().get("customer");
    if (id) openCustomer(id);
  });
  $("#key-forget").addEventListener("click", () => {
    forgetKey();
    showKeyStatus();
    loadMonitor();
    loadStatus();
  });
  $("#search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("#search-input").value.trim();
    if (q) search(q);
  });
  $("#monitor-refresh").addEventListener("click", loadMonitor);
  window.addEventListener("hashchange", route);
  loadMonitor();
  loadStatus();
  const id = fragment().get("customer");
  if (id) {
    if (getKey()) openCustomer(id);
    else searchError(NO_KEY);
  } else if (hadKey) $("#search-input").focus();
}

start();
