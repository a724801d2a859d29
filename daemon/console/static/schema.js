// An integration's schema: edited as JSON, a refused one shown at the path the server names.

import { enc, request } from "./api.js";
import { h, say } from "./dom.js";

// JSON text with 2-space indents, and where each JSON path (a.b[0].c) starts and ends in it.
export function located(value) {
  const spots = {};
  let text = "";
  function write(v, path, indent) {
    const start = text.length;
    if (Array.isArray(v) && v.length) {
      text += "[\n";
      v.forEach((item, i) => {
        text += "  ".repeat(indent + 1);
        write(item, `${path}[${i}]`, indent + 1);
        text += i < v.length - 1 ? ",\n" : "\n";
      });
      text += `${"  ".repeat(indent)}]`;
    } else if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
      const keys = Object.keys(v);
      text += "{\n";
      keys.forEach((k, i) => {
        text += `${"  ".repeat(indent + 1)}${JSON.stringify(k)}: `;
        write(v[k], path ? `${path}.${k}` : k, indent + 1);
        text += i < keys.length - 1 ? ",\n" : "\n";
      });
      text += `${"  ".repeat(indent)}}`;
    } else {
      text += JSON.stringify(v);
    }
    spots[path] = [start, text.length];
  }
  write(value, "", 0);
  return { text, spots };
}

export function schemaSection(id, schema) {
  const area = h("textarea", { id: "schema-text", rows: 18, spellcheck: "false", "aria-describedby": "schema-error" });
  area.value = located(schema).text;
  const error = h("p", { id: "schema-error", class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "schema" },
    h("h2", { id: "schema" }, "Schema"),
    h("label", { for: "schema-text" }, "The effective schema (JSON); saving validates it, and an invalid one is refused"),
    area,
    error,
    h("button", { type: "submit" }, "Save schema"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    let body;
    try {
      body = JSON.parse(area.value);
    } catch (e) {
      error.textContent = `Not JSON: ${e.message}`;
      error.hidden = false;
      return;
    }
    try {
      const saved = await request("PUT", `/api/sync/integrations/${enc(id)}/schema`, body);
      area.value = located(saved).text;
      say("Schema saved");
    } catch (e) {
      const { text, spots } = located(body);
      area.value = text;
      const path = e.field || "";
      const message = path && e.message.startsWith(`${path}: `) ? e.message.slice(path.length + 2) : e.message;
      error.replaceChildren(...(path ? [h("code", { class: "path" }, path), ": "] : []), message);
      error.hidden = false;
      // The deepest part of the path the text has: select it, so the editor shows where.
      let probe = path.replace(/^schema\.?/, "");
      while (probe && !(probe in spots)) probe = probe.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
      if (spots[probe]) {
        area.focus();
        area.setSelectionRange(...spots[probe]);
      }
    }
  });
  return form;
}
