// The silver graph around a customer, drawn as SVG with a small deterministic layout.
//
// Columns, left to right: 0 the customer's value nodes; 1 the customer (the survivor and
// the source records linked to it by SAME_AS) with the entities one hop away below it
// (companies); 2 those entities' values and the entities two hops away (assets); 3 …
// A value shared by the customer and another entity (a city) stays in column 0.
// Every edge has its own port on its value (or farther) end, and its label sits there.

import { h, s, clear, fmtShort, fmtTime, truncate, textWidth } from "./util.js";

const MARGIN = 16;
const GAP = 200; // horizontal room between columns for edge labels
const VALUE_W = 210;
const ENTITY_W = 220;
const PORT = 34; // vertical room per edge port
const VALUE_H = 40;
const ENTITY_H = 46;
const VGAP = 12;
const HUB_PORT = 12; // vertical room per edge at its hub end

const isEntity = (n) => n.value === null || n.value === undefined;

function relOf(attribute) {
  return `HAS_${attribute.toUpperCase()}`;
}

/** The layout: positioned nodes and edges with their end points and labels. */
export function layout(graph, attributes) {
  const nodes = new Map(graph.nodes.map((n) => [n.node_id, { ...n, out: [], in: [] }]));
  const edges = graph.edges
    .filter((e) => nodes.has(e.source_node_id) && nodes.has(e.target_node_id))
    .map((e, i) => ({ ...e, i }));
  for (const e of edges) {
    nodes.get(e.source_node_id).out.push(e);
    nodes.get(e.target_node_id).in.push(e);
  }
  const attrOfRel = new Map(attributes.map((a, i) => [relOf(a), { name: a, order: i }]));

  // The customer cluster: the root and every record joined to it by SAME_AS.
  const cluster = new Set([graph.root]);
  for (let grown = true; grown; ) {
    grown = false;
    for (const e of edges) {
      if (e.rel_type !== "SAME_AS") continue;
      if (cluster.has(e.source_node_id) !== cluster.has(e.target_node_id)) {
        cluster.add(e.source_node_id);
        cluster.add(e.target_node_id);
        grown = true;
      }
    }
  }

  // Hops from the cluster over entity-to-entity edges.
  const dist = new Map([...cluster].map((id) => [id, 0]));
  const parent = new Map();
  const queue = [...cluster];
  while (queue.length) {
    const id = queue.shift();
    const node = nodes.get(id);
    for (const e of [...node.out, ...node.in]) {
      const other = e.source_node_id === id ? e.target_node_id : e.source_node_id;
      if (!isEntity(nodes.get(other)) || dist.has(other)) continue;
      dist.set(other, dist.get(id) + 1);
      parent.set(other, id);
      queue.push(other);
    }
  }

  // Edge kinds: the profile's winners and losers are the cluster's attribute edges.
  // A current value equal to the winner (another source holding the same value) agrees.
  const winning = new Set();
  for (const e of edges) {
    const attr = attrOfRel.get(e.rel_type);
    e.attribute = cluster.has(e.source_node_id) && attr ? attr.name : null;
    if (e.attribute && e.winner) winning.add(`${e.rel_type}|${e.target_node_id}`);
  }
  for (const e of edges) {
    if (!e.attribute) e.kind = "plain";
    else if (e.winner) e.kind = "win";
    else e.kind = winning.has(`${e.rel_type}|${e.target_node_id}`) ? "agree" : "lose";
  }

  // Columns.
  const entityCol = (id) => {
    const d = dist.has(id) ? dist.get(id) : 1;
    return d <= 1 ? 1 : d;
  };
  for (const node of nodes.values()) {
    node.entity = isEntity(node);
    if (node.entity) {
      node.col = entityCol(node.node_id);
      node.dist = dist.has(node.node_id) ? dist.get(node.node_id) : 1;
      continue;
    }
    const owners = node.in.map((e) => e.source_node_id).filter((id) => isEntity(nodes.get(id)));
    if (!owners.length) {
      node.col = 0;
      node.owner = null;
      continue;
    }
    owners.sort((a, b) => (dist.get(a) ?? 9) - (dist.get(b) ?? 9));
    node.owner = owners[0];
    node.col = (dist.get(owners[0]) ?? 1) === 0 ? 0 : entityCol(owners[0]) + 1;
    node.shared = owners.some((id) => (dist.get(id) ?? 1) > 0) && node.col === 0;
    node.attribute = node.in.map((e) => e.attribute).find(Boolean) || null;
    node.wins = node.in.some((e) => e.kind === "win");
    node.loses = !node.wins && node.in.some((e) => e.kind === "lose");
  }

  // Entity labels: the record a customer entity is, a company's or asset's name.
  for (const node of nodes.values()) {
    if (!node.entity) continue;
    const valueOf = (rel) => {
      const e = node.out.find((x) => x.rel_type === rel);
      return e ? nodes.get(e.target_node_id).value : null;
    };
    const record = valueOf("HAS_SOURCE_RECORD");
    const name = valueOf(`HAS_${node.node_type.toUpperCase()}_NAME`) || valueOf("HAS_FULL_NAME");
    if (node.node_id === graph.root) node.kind = `${node.node_type} · survivor`;
    else if (cluster.has(node.node_id)) node.kind = `${node.node_type} record`;
    else node.kind = node.node_type;
    node.label = node.node_type === "customer" ? record || name || node.node_id : name || record || node.node_id;
  }

  // Which end of an edge is "far" (gets a roomy port and the label): the value end, else
  // the end farther from column 1. The other ("hub") end gets a narrow port. In-column
  // edges are arcs on the right side, with narrow ports at both ends.
  const ports = new Map(); // "node|side" -> [{edge, end: "far"|"hub"|"arc", other}]
  const addPort = (node, side, edge, end, other) => {
    const key = `${node.node_id}|${side}`;
    if (!ports.has(key)) ports.set(key, []);
    ports.get(key).push({ edge, end, other });
  };
  for (const e of edges) {
    const a = nodes.get(e.source_node_id);
    const b = nodes.get(e.target_node_id);
    if (a.col === b.col) {
      e.arc = true;
      addPort(a, "right", e, "arc", b);
      addPort(b, "right", e, "arc", a);
      continue;
    }
    let far;
    if (a.entity !== b.entity) far = a.entity ? b : a;
    else far = Math.abs(a.col - 1) > Math.abs(b.col - 1) ? a : b;
    const hub = far === a ? b : a;
    e.far = far.node_id;
    e.hub = hub.node_id;
    e.farSide = hub.col > far.col ? "right" : "left";
    addPort(far, e.farSide, e, "far", hub);
    addPort(hub, e.farSide === "right" ? "left" : "right", e, "hub", far);
  }
  for (const node of nodes.values()) {
    let need = node.entity ? ENTITY_H : VALUE_H;
    for (const side of ["left", "right"]) {
      const list = ports.get(`${node.node_id}|${side}`) || [];
      const roomy = list.filter((p) => p.end === "far").length;
      need = Math.max(need, roomy * PORT + (list.length - roomy) * HUB_PORT + (roomy ? 0 : 2 * HUB_PORT));
    }
    node.w = node.entity ? ENTITY_W : VALUE_W;
    node.h = need;
  }

  // Order within columns.
  const columns = [];
  for (const node of nodes.values()) (columns[node.col] ||= []).push(node);
  for (let c = 0; c < columns.length; c += 1) columns[c] ||= [];
  const relOrder = (node) => {
    const orders = node.in.map((e) => (attrOfRel.has(e.rel_type) ? attrOfRel.get(e.rel_type).order : 100));
    return orders.length ? Math.min(...orders) : 100;
  };
  const byText = (a, b) => String(a.value ?? a.label).localeCompare(String(b.value ?? b.label));
  columns[1].sort((a, b) => {
    const rank = (n) => (n.node_id === graph.root ? 0 : cluster.has(n.node_id) ? 1 : 2);
    return rank(a) - rank(b) || a.node_type.localeCompare(b.node_type) || byText(a, b);
  });
  // Column 0 in blocks: the values of the survivor, then of each other record (each in
  // profile order), then the values shared with entities farther out (next to those).
  const rank1 = new Map(columns[1].map((n, i) => [n.node_id, i]));
  const blockOf = (node) => {
    if (node.shared) return columns[1].length;
    const owners = node.in.map((e) => rank1.get(e.source_node_id)).filter((r) => r !== undefined);
    return owners.length ? Math.min(...owners) : columns[1].length + 1;
  };
  columns[0].sort((a, b) => blockOf(a) - blockOf(b) || relOrder(a) - relOrder(b) || a.node_type.localeCompare(b.node_type) || byText(a, b));

  // Vertical positions: column 0 stacked; column 1 at the median height of its column 0
  // neighbours (pushed apart where they would overlap); later columns grouped around the
  // node they hang from.
  let y = MARGIN;
  for (const node of columns[0]) {
    node.y = y;
    y += node.h + VGAP;
  }
  const col1 = columns[1];
  for (const node of col1) {
    const centres = [...node.out, ...node.in]
      .map((e) => nodes.get(e.source_node_id === node.node_id ? e.target_node_id : e.source_node_id))
      .filter((n) => n.col === 0)
      .map((n) => n.y + n.h / 2)
      .sort((a, b) => a - b);
    node.want = centres.length ? centres[Math.floor((centres.length - 1) / 2)] : null;
  }
  let floor1 = MARGIN;
  for (const node of col1) {
    const want = node.want === null ? floor1 + node.h / 2 : node.want;
    node.y = Math.max(floor1, want - node.h / 2);
    floor1 = node.y + node.h + 3 * VGAP;
  }
  for (let c = 2; c < columns.length; c += 1) {
    const groups = new Map();
    for (const node of columns[c]) {
      const from = node.entity ? parent.get(node.node_id) : node.owner;
      const key = from && nodes.get(from).y !== undefined ? from : "";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(node);
    }
    const ordered = [...groups.entries()].sort(([a], [b]) => (a ? nodes.get(a).y : 1e9) - (b ? nodes.get(b).y : 1e9));
    let floor = MARGIN;
    for (const [from, group] of ordered) {
      group.sort((a, b) => (a.entity ? 1 : 0) - (b.entity ? 1 : 0) || relOrder(a) - relOrder(b) || byText(a, b));
      const total = group.reduce((sum, n) => sum + n.h, 0) + VGAP * (group.length - 1);
      const centre = from ? nodes.get(from).y + nodes.get(from).h / 2 : floor + total / 2;
      let top = Math.max(floor, centre - total / 2);
      for (const node of group) {
        node.y = top;
        top += node.h + VGAP;
      }
      floor = top;
    }
  }

  // Horizontal positions. In-column arcs bulge right: make room for them and their labels.
  const arcs = edges.filter((e) => e.arc);
  const gaps = columns.map(() => GAP);
  arcs.sort((a, b) => {
    const span = (e) => Math.abs(nodes.get(e.source_node_id).y - nodes.get(e.target_node_id).y);
    return span(a) - span(b);
  });
  const arcDepth = new Map();
  arcs.forEach((e) => {
    const col = nodes.get(e.source_node_id).col;
    const depth = (arcDepth.get(col) || 0) + 1;
    arcDepth.set(col, depth);
    e.bulge = 24 + 22 * depth;
    e.lines = labelLines(e, nodes);
    const need = e.bulge * 0.75 + 10 + Math.max(...e.lines.map((l) => textWidth(l, 11))) + 24;
    gaps[col] = Math.max(gaps[col], need + 0);
  });
  let x = MARGIN;
  const colX = [];
  columns.forEach((col, c) => {
    colX[c] = x;
    const width = col.length ? Math.max(...col.map((n) => n.w)) : 0;
    col.forEach((n) => {
      n.x = x + (width - n.w) / 2;
    });
    x += width + (col.length ? gaps[c] : 0);
  });
  // The last column keeps its gap only when arcs bulge out of it.
  const last = columns.length - 1;
  const width = x - (last >= 0 && columns[last].length && !arcDepth.has(last) ? gaps[last] : 0) + MARGIN;
  const height = Math.max(...[...nodes.values()].map((n) => n.y + n.h), 0) + MARGIN;

  // Port positions, ordered by the other end's height so that edges do not cross there.
  for (const [key, list] of ports) {
    const [id, side] = key.split("|");
    const node = nodes.get(id);
    list.sort((p, q) => p.other.y + p.other.h / 2 - (q.other.y + q.other.h / 2) || p.edge.i - q.edge.i);
    const sizes = list.map((p) => (p.end === "far" ? PORT : HUB_PORT));
    const total = sizes.reduce((sum, n) => sum + n, 0);
    let y = node.y + (node.h - total) / 2;
    list.forEach((p, k) => {
      const point = { x: side === "right" ? node.x + node.w : node.x, y: y + sizes[k] / 2 };
      y += sizes[k];
      if (p.end === "far") p.edge.farPoint = point;
      else if (p.end === "hub") p.edge.hubPoint = point;
      else if (p.edge.source_node_id === id && !p.edge.sourcePoint) p.edge.sourcePoint = point;
      else p.edge.targetPoint = point;
    });
  }
  for (const e of edges) {
    e.lines = e.lines || labelLines(e, nodes);
    if (e.arc) {
      const { x: ax, y: ay } = e.sourcePoint;
      const { x: bx, y: by } = e.targetPoint;
      const cx = Math.max(ax, bx) + e.bulge;
      e.path = `M${ax},${ay} C${cx},${ay} ${cx},${by} ${bx},${by}`;
      e.label = { x: Math.max(ax, bx) + e.bulge * 0.75 + 6, y: (ay + by) / 2 + 12, anchor: "start" };
      continue;
    }
    const { x: hx, y: hy } = e.hubPoint;
    const { x: fx, y: fy } = e.farPoint;
    const dx = (hx - fx) / 2;
    e.path = `M${hx},${hy} C${hx - dx},${hy} ${fx + dx},${fy} ${fx},${fy}`;
    e.label = { x: e.farSide === "right" ? fx + 6 : fx - 6, y: fy, anchor: e.farSide === "right" ? "start" : "end" };
  }
  return { nodes: [...nodes.values()], edges, width, height, cluster };
}

function labelLines(e, nodes) {
  const field = e.source_field ? ` · ${e.source_field}` : "";
  const star = e.kind === "win" ? "★ " : "";
  const target = nodes.get(e.target_node_id);
  const first = isEntity(target) || e.arc ? `${e.rel_type} · ${e.source_system}${field}` : `${star}${e.source_system}${field}`;
  return [first, fmtShort(e.updated_at)];
}

/** Draw the graph into `container`; value nodes of profile attributes call onAttribute. */
export function renderGraph(container, graph, attributes, onAttribute) {
  clear(container);
  if (!graph.nodes.length) {
    container.append(h("p", { class: "muted" }, "No current edges for this customer."));
    return;
  }
  const g = layout(graph, attributes);
  const svg = s("svg", {
    class: "graph",
    viewBox: `0 0 ${Math.ceil(g.width)} ${Math.ceil(g.height)}`,
    width: Math.ceil(g.width),
    height: Math.ceil(g.height),
    role: "group",
    "aria-label": `Silver graph: ${g.nodes.length} nodes and ${g.edges.length} current edges; the same edges are listed in the table below`,
    "data-nodes": g.nodes.length,
    "data-edges": g.edges.length,
  });
  const edgeLayer = s("g", { class: "edges" });
  const labelLayer = s("g", { class: "edge-labels" });
  const order = { plain: 0, agree: 1, lose: 2, win: 3 };
  for (const e of [...g.edges].sort((a, b) => order[a.kind] - order[b.kind])) {
    const title = `${e.rel_type} from ${e.source_system}${e.source_field ? ` (${e.source_field})` : ""}, field changed ${fmtTime(e.updated_at)}${{ win: ", winner", lose: ", loses", agree: ", agrees with the winner" }[e.kind] || ""}`;
    edgeLayer.append(s("path", { d: e.path, class: `edge ${e.kind}${e.arc ? " arc" : ""}`, "data-rel": e.rel_type }, s("title", {}, title)));
    labelLayer.append(
      s(
        "text",
        { x: e.label.x, y: e.label.y, "text-anchor": e.label.anchor, class: `edge-label ${e.kind}` },
        s("tspan", { x: e.label.x, dy: -15 }, e.lines[0]),
        s("tspan", { x: e.label.x, dy: 12, class: "time" }, e.lines[1]),
      ),
    );
  }
  const nodeLayer = s("g", { class: "nodes" });
  for (const n of g.nodes) {
    const classes = ["node", n.entity ? "entity" : "value", n.node_type === "source_record" ? "record" : ""];
    if (n.node_id === graph.root) classes.push("root");
    if (n.wins) classes.push("win");
    if (n.loses) classes.push("lose");
    const first = n.entity ? n.kind : n.node_type;
    const second = n.entity ? n.label : n.value;
    const cy = n.y + n.h / 2;
    const clickable = !n.entity && n.attribute && onAttribute;
    const description = n.entity
      ? `${n.kind} ${n.label}`
      : `${n.node_type} ${n.value}${n.wins ? ", winning value" : n.loses ? ", losing value" : ""}`;
    const group = s(
      "g",
      {
        class: classes.filter(Boolean).join(" "),
        "data-node-id": n.node_id,
        "data-node-type": n.node_type,
        tabindex: clickable ? 0 : null,
        role: clickable ? "button" : null,
        "aria-label": clickable ? `${description}: show the ${n.attribute} timeline` : null,
      },
      s("title", {}, `${description}\n${n.node_id}`),
      s("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: n.entity ? 10 : 6 }),
    );
    // A record id "system:object:id" on two lines in an entity box; one line otherwise.
    const record = n.entity ? /^([^:]+):([^:]+):(.+)$/.exec(second) : null;
    const lines = record ? [`${record[1]} · ${record[2]}`, record[3]] : [second];
    const fit = (text) => truncate(text, Math.floor((n.w - 16) / 7.8));
    const top = cy - (lines.length * 16) / 2 + 4;
    group.append(s("text", { x: n.x + 10, y: top, class: "kind" }, truncate(`${n.wins ? "★ " : ""}${first}`, Math.floor((n.w - 16) / 7))));
    lines.forEach((line, k) => group.append(s("text", { x: n.x + 10, y: top + 16 * (k + 1), class: "val" }, fit(line))));
    if (clickable) {
      const open = () => onAttribute(n.attribute);
      group.addEventListener("click", open);
      group.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          open();
        }
      });
    }
    nodeLayer.append(group);
  }
  svg.append(edgeLayer, nodeLayer, labelLayer);

  const legend = h(
    "ul",
    { class: "legend", "aria-label": "Legend" },
    h("li", {}, h("span", { class: "swatch win" }), "winning edge (the profile’s value)"),
    h("li", {}, h("span", { class: "swatch agree" }), "same value from another source"),
    h("li", {}, h("span", { class: "swatch lose" }), "current value that loses"),
    h("li", {}, h("span", { class: "swatch plain" }), "other edge"),
    h("li", {}, h("span", { class: "swatch entity" }), "entity (customer, company, asset)"),
    h("li", {}, h("span", { class: "swatch value" }), "value node (shared by everyone holding it)"),
  );
  const names = new Map(g.nodes.map((n) => [n.node_id, n.entity ? `${n.kind}: ${n.label}` : `${n.node_type}: ${n.value}`]));
  const rows = g.edges.map((e) =>
    h(
      "tr",
      { class: e.kind },
      h("td", {}, names.get(e.source_node_id)),
      h("td", {}, e.rel_type),
      h("td", {}, names.get(e.target_node_id)),
      h("td", {}, e.source_system),
      h("td", {}, e.source_field || "—"),
      h("td", {}, fmtTime(e.updated_at)),
      h("td", {}, String(e.confidence)),
      h("td", {}, { win: "winner", lose: "loses", agree: "agrees" }[e.kind] || ""),
    ),
  );
  const details = h(
    "details",
    { class: "edge-table" },
    h("summary", {}, `The ${g.edges.length} edges as a table`),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["From", "Relation", "To", "Source", "Field", "Field changed", "Confidence", "Profile"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows),
      ),
    ),
  );
  container.append(h("div", { class: "graph-wrap" }, svg), legend);
  if (graph.truncated) container.append(h("p", { class: "muted" }, "The neighbourhood was truncated: only the nearest nodes are drawn."));
  container.append(details);
}
