// Widget: the topic tree (MQTT Explorer's main view): topics as a collapsible hierarchy by `/`
// level, each with its message count (of the whole subtree), rate and last value. Click a topic, or
// Enter / Space on it, to open its history; the arrow keys move and fold. Updated in place, so
// focus and folding survive the refresh.

import { $ } from "./dom.js";
import { rate, topics } from "./topics.js";

let onSelect = () => {};
let root = null;
let selected = null;

function newNode(name, path, level) {
  return { name, path, level, children: new Map(), expanded: true, el: null };
}

export function setupTree(handlers) {
  onSelect = handlers.onSelect;
  clearTree();
}

export function clearTree() {
  root = newNode("", "", 0);
  selected = null;
  $("tree").replaceChildren();
  $("tree-empty").hidden = false;
}

// Marks `topic` as the one whose history is open.
export function selectTopic(topic) {
  selected = topic;
  renderTree();
}

export function renderTree() {
  const now = Date.now();
  for (const topic of topics.keys()) ensure(topic);
  $("tree-empty").hidden = topics.size > 0;
  update(root, now);
}

// The node of `topic`, with its ancestors, created when missing.
function ensure(topic) {
  let node = root;
  const parts = topic.split("/");
  parts.forEach((part, i) => {
    let child = node.children.get(part);
    if (!child) {
      child = newNode(part, parts.slice(0, i + 1).join("/"), i + 1);
      node.children.set(part, child);
      insertSorted(node, child);
    }
    node = child;
  });
  return node;
}

function insertSorted(parent, node) {
  makeElements(node);
  const list = parent === root ? $("tree") : parent.el.group;
  const after = [...parent.children.values()].filter((c) => c !== node && c.el && c.name > node.name)
    .sort((a, b) => (a.name < b.name ? -1 : 1))[0];
  list.insertBefore(node.el.li, after ? after.el.li : null);
  if (parent !== root) parent.el.group.hidden = !parent.expanded;
}

function makeElements(node) {
  const li = document.createElement("li");
  li.setAttribute("role", "none");
  const row = document.createElement("div");
  row.className = "node";
  row.setAttribute("role", "treeitem");
  row.setAttribute("aria-level", String(node.level));
  row.tabIndex = 0;
  row.dataset.topic = node.path;
  const twisty = document.createElement("span");
  twisty.className = "twisty";
  twisty.setAttribute("aria-hidden", "true");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = node.name === "" ? "(empty)" : node.name;
  name.title = node.path;
  const count = document.createElement("span");
  count.className = "count";
  const r = document.createElement("span");
  r.className = "rate";
  const last = document.createElement("span");
  last.className = "last";
  row.append(twisty, name, count, r, last);
  const group = document.createElement("ul");
  group.setAttribute("role", "group");
  group.hidden = true;
  li.append(row, group);
  row.onclick = () => activate(node);
  row.onkeydown = (e) => key(e, node);
  node.el = { li, row, twisty, count, rate: r, last, group };
}

// Sums counts and rates over the subtree and writes them; returns [count, rate].
function update(node, now) {
  let count = 0, perSec = 0;
  for (const child of node.children.values()) {
    const [c, r] = update(child, now);
    count += c; perSec += r;
  }
  if (node === root) return [count, perSec];
  const own = topics.get(node.path);
  if (own) { count += own.count; perSec += rate(own, now); }
  const e = node.el;
  const folder = node.children.size > 0;
  e.count.textContent = String(count);
  e.rate.textContent = perSec.toFixed(1) + "/s";
  e.last.textContent = own && own.last ? own.last.text.slice(0, 80) : "";
  e.twisty.textContent = folder ? (node.expanded ? "▾" : "▸") : "";
  if (folder) e.row.setAttribute("aria-expanded", node.expanded ? "true" : "false");
  else e.row.removeAttribute("aria-expanded");
  e.row.setAttribute("aria-selected", node.path === selected ? "true" : "false");
  e.row.dataset.count = String(count);
  e.row.title = node.path + " — " + count + " messages" + (own ? "" : " below");
  e.group.hidden = !node.expanded || !folder;
  return [count, perSec];
}

// Click / Enter / Space: open the topic's history; a folder also folds or unfolds.
function activate(node) {
  if (node.children.size && (!topics.has(node.path) || node.path === selected)) node.expanded = !node.expanded;
  if (topics.has(node.path)) {
    selected = node.path;
    onSelect(node.path);
  }
  renderTree();
}

function key(e, node) {
  const rows = [...$("tree").querySelectorAll(".node")].filter((r) => r.offsetParent !== null);
  const i = rows.indexOf(e.currentTarget);
  const focus = (r) => { if (r) { e.preventDefault(); r.focus(); } };
  switch (e.key) {
    case "Enter": case " ": e.preventDefault(); activate(node); return;
    case "ArrowDown": return focus(rows[i + 1]);
    case "ArrowUp": return focus(rows[i - 1]);
    case "Home": return focus(rows[0]);
    case "End": return focus(rows[rows.length - 1]);
    case "ArrowRight":
      e.preventDefault();
      if (node.children.size && !node.expanded) { node.expanded = true; renderTree(); } else focus(rows[i + 1]);
      return;
    case "ArrowLeft": {
      e.preventDefault();
      if (node.children.size && node.expanded) { node.expanded = false; renderTree(); return; }
      const parent = e.currentTarget.parentElement.parentElement.previousElementSibling;
      if (parent && parent.classList.contains("node")) parent.focus();
    }
  }
}
