// Building the page. Everything shown goes in as text (textContent, text nodes, attribute values), never as
// HTML: a request path or a message that holds markup shows as that markup, and runs nothing.

// An element: `text` sets its text, `class` its class, `on<event>` a listener, anything else an attribute;
// children are nodes or strings (strings become text nodes), and falsy children are left out.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// Marks the one button of `group` whose `attribute` equals `value` as active.
export function highlight(group, attribute, value) {
  for (const button of group.querySelectorAll(`[${attribute}]`)) button.classList.toggle("active", button.getAttribute(attribute) === value);
}

// A table of figures: a head row of `labels`, then `rows` (<tr> elements). The rows go straight under <table>
// (valid HTML): the overview's own table is the page's one <tbody>.
export function figureTable(attrs, labels, rows) {
  const head = el("thead", {}, el("tr", {}, ...labels.map((label) => el("th", { text: label }))));
  return el("table", { ...attrs, class: `figures ${attrs.class || ""}`.trim() }, head, ...rows);
}

// A titled section of a tab, `name` its class and data-panel.
export function panel(name, title, ...children) {
  return el("section", { class: `panel ${name}`, "data-panel": name }, el("h3", { text: title }), ...children);
}

// A note in place of a panel with nothing to show yet.
export function emptyNote(text) { return el("div", { class: "empty", text }); }

export function statusPill(status) { return el("span", { class: `pill ${status}`, text: status }); }

export function showStatus(text) { $("#status").textContent = text; }
