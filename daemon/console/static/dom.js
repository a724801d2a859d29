// Drawing: elements from data (text only, never HTML), the notice, buttons that act,
// tables and the small formats every page uses.

export const main = document.getElementById("main");
export const notice = document.getElementById("notice");

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "for") el.htmlFor = value;
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return h("time", { datetime: value, title: value }, date.toLocaleString());
}

export function pairs(rows) {
  return h(
    "dl",
    { class: "pairs" },
    rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]),
  );
}

export function say(message, kind = "ok", link = null) {
  notice.replaceChildren(h("p", { class: `notice ${kind}` }, message, link ? [" ", link] : []));
}

export function failed(error) {
  say(error.message || String(error), "error");
}

export function button(label, onclick, attrs = {}) {
  return h("button", { type: "button", ...attrs, onclick }, label);
}

// An action button: runs *action*, says what happened, then calls *after*.
export function act(label, action, after, attrs = {}) {
  return button(
    label,
    async (event) => {
      const target = event.currentTarget;
      target.disabled = true;
      try {
        const answer = await action();
        const job = answer && (answer.jobId || (answer.type && answer.id));
        const link = job ? h("a", { href: `#/jobs/${job}` }, `job ${job}`) : null;
        say(`${label}: ${(answer && answer.message) || "done"}`, "ok", link);
        if (after) await after(answer);
      } catch (error) {
        failed(error);
      } finally {
        target.disabled = false;
      }
    },
    attrs,
  );
}

export function table(headings, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 1000) / 10} %`;
}

export function show(value) {
  if (value === undefined) return "∅";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// Each changed attribute as "name: before → after".
export function changeList(changes, attributes) {
  if (changes) {
    return h(
      "ul",
      { class: "changes" },
      Object.entries(changes).map(([name, c]) =>
        h("li", {}, h("code", {}, name), ": ", h("del", {}, show(c.from)), " → ", h("ins", {}, show(c.to))),
      ),
    );
  }
  if (attributes) {
    return h(
      "ul",
      { class: "changes" },
      Object.entries(attributes).map(([name, v]) => h("li", {}, h("code", {}, name), ": ", h("ins", {}, show(v)))),
    );
  }
  return "";
}

// *code*, a job's status; *withErrors*: a completed job left objects in error.
export function statusBadge(code, withErrors = false) {
  const text = withErrors && code === "completed" ? "completed with errors" : code;
  return h("span", { class: `badge ${String(code).toLowerCase()}${withErrors ? " errors" : ""}` }, text);
}

// "1 h 30 min" for *seconds* (a schedule's interval), "450 ms" below a second.
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  const parts = [];
  let left = Math.round(seconds);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)} ${unit}`);
      left %= size;
    }
  }
  return parts.join(" ");
}
