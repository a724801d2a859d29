// An integration's provisioning log: its filters (times in the browser's time zone) and pages.

import { button, changeList, h, table, when } from "./dom.js";
import { enc, get, hasRoute } from "./api.js";

export const ACTIONS = ["create", "update", "enable", "disable", "delete", "escrow", "drop"];
export const TIME_TEXT = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$/;

// "+02:00" for a UTC offset of *minutes* east.
export function offsetText(minutes) {
  const sign = minutes < 0 ? "-" : "+";
  const m = Math.abs(minutes);
  return `${sign}${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
}

export const pad = (n, width = 2) => String(n).padStart(width, "0");

// A time as typed (a date, a date and time, with or without an offset) as the RFC 3339
// time the API takes. Without an offset it is a wall-clock time of this browser's time
// zone, sent with the offset the zone has at that instant (so across a change of
// daylight saving time too); a time the clocks skip when they go forward is the same
// time after the change (02:30 → 03:30), a time they pass twice when they go back the
// first one. Throws an Error saying what is expected for anything else.
export function rfc3339(text) {
  const m = TIME_TEXT.exec(text.trim());
  const expected = new Error("expected a date and time, as 2025-06-01 14:30 (this browser's time zone) or 2025-06-01T14:30:00+02:00");
  if (!m) throw expected;
  const [, y, mo, d, hh = "00", mi = "00", ss = "00", frac = "", zone] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, hh, mi, ss].map(Number);
  const calendar = new Date(0);
  calendar.setUTCFullYear(year, month - 1, day);
  const real = calendar.getUTCFullYear() === year && calendar.getUTCMonth() === month - 1 && calendar.getUTCDate() === day;
  if (!real || hour > 23 || minute > 59 || second > 59) throw expected;
  if (zone !== undefined) {
    const offset = zone.toUpperCase() === "Z" ? "Z" : zone.includes(":") ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
    return `${y}-${mo}-${d}T${hh}:${mi}:${ss}${frac}${offset}`;
  }
  // The zone's rules, as the Date constructor applies them: a skipped time moves forward.
  const local = new Date(year, month - 1, day, hour, minute, second);
  if (year < 100) local.setFullYear(year, month - 1, day); // not 19xx
  const date = `${pad(local.getFullYear(), 4)}-${pad(local.getMonth() + 1)}-${pad(local.getDate())}`;
  const time = `${pad(local.getHours())}:${pad(local.getMinutes())}:${pad(local.getSeconds())}${frac}`;
  return `${date}T${time}${offsetText(-local.getTimezoneOffset())}`;
}

// This browser's time zone, as the hints of the time filters name it.
export function zoneName() {
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return name || `UTC${offsetText(-new Date().getTimezoneOffset())}`;
}

// One labelled filter of the provisioning log, with the place its error is shown.
export function filterField(name, label, control, hint) {
  control.id = `ch-${name}`;
  control.name = name;
  const error = h("p", { id: `ch-${name}-error`, class: "error field-error", role: "alert", hidden: true });
  const help = hint ? h("p", { id: `ch-${name}-hint`, class: "hint" }, hint) : null;
  control.setAttribute("aria-describedby", [help && help.id, error.id].filter(Boolean).join(" "));
  const box = h("div", {}, h("label", { for: control.id }, label), control, help, error);
  return { name, control, error, box };
}

// A checkbox picking the source object of change *c* for the job forms (see picks() in
// jobforms.js), or "" when no form takes its entity type.
function pickBox(c, picked) {
  if (!picked || !picked.takes(c.entityType) || !c.sourceId) return "";
  return h("input", {
    type: "checkbox",
    checked: picked.has(c.entityType, c.sourceId),
    "aria-label": `Select ${c.entityType} ${c.sourceId}`,
    "data-pick-type": c.entityType,
    "data-pick-id": c.sourceId,
    onchange: (event) => picked.set(c.entityType, c.sourceId, event.currentTarget.checked),
  });
}

export function changeRow(c, picked = null) {
  const what = [changeList(c.changes, c.attributes)];
  if (c.reason) what.push(h("p", { class: "reason" }, c.kind ? `${c.kind}: ` : "", c.reason));
  return h(
    "tr",
    {},
    h("td", {}, when(c.at)),
    h("td", {}, c.action),
    h("td", {}, c.entityType),
    h("td", {}, h("code", {}, c.sourceId ?? "—"), " → ", h("code", {}, c.targetId ?? "—")),
    h("td", {}, what),
    h("td", {}, c.jobId ? h("a", { href: `#/jobs/${c.jobId}` }, c.jobId) : "—"),
    picked ? h("td", {}, pickBox(c, picked)) : null,
  );
}

// The provisioning log of integration *id*; with *picked*, rows of the entity types it
// takes have a checkbox that picks their object for the job forms.
export function changesSection(id, entityTypes, picked = null) {
  const choice = (options) => h("select", {}, h("option", { value: "" }, "all"), options.map((o) => h("option", { value: o }, o)));
  const text = () => h("input", { type: "text", autocomplete: "off" });
  const timeHint = `Without an offset: this browser's time zone, ${zoneName()}.`;
  const filters = [
    filterField("objectId", "Object id", text()),
    filterField("entityType", "Entity type", choice(entityTypes)),
    filterField("action", "Action", choice(ACTIONS)),
    filterField("jobId", "Job", text()),
    filterField("since", "Since", text(), timeHint),
    filterField("until", "Until", text(), timeHint),
    filterField("limit", "Per page", h("select", {}, ["10", "20", "50", "200"].map((n) => h("option", { value: n, selected: n === "20" }, n)))),
  ];
  const byName = Object.fromEntries(filters.map((f) => [f.name, f]));
  const out = h("div", { id: "changes-list", "aria-live": "polite" });
  const more = h("div", { class: "actions" });
  function clearErrors() {
    for (const f of filters) {
      f.error.hidden = true;
      f.control.removeAttribute("aria-invalid");
    }
  }
  function fieldError(f, message) {
    f.error.textContent = message;
    f.error.hidden = false;
    f.control.setAttribute("aria-invalid", "true");
  }
  // The query of the filters as they are now, or null when one is wrong (it says why).
  function query() {
    clearErrors();
    const q = new URLSearchParams();
    let ok = true;
    for (const f of filters) {
      const value = f.control.value.trim();
      if (!value) continue;
      if (f.name === "since" || f.name === "until") {
        try {
          q.set(f.name, rfc3339(value));
        } catch (error) {
          fieldError(f, error.message);
          ok = false;
        }
      } else q.set(f.name, value);
    }
    return ok ? q : null;
  }
  async function load(q, cursor) {
    const page = new URLSearchParams(q);
    if (cursor) page.set("cursor", cursor);
    let answer;
    try {
      if (!(await hasRoute("/api/sync/integrations/{integrationId}/changes"))) {
        out.replaceChildren(h("p", { class: "empty" }, "This daemon keeps no provisioning log."));
        return;
      }
      answer = await get(`/api/sync/integrations/${enc(id)}/changes?${page}`);
    } catch (error) {
      const f = error.field && byName[error.field];
      if (f) fieldError(f, error.message);
      else out.replaceChildren(h("p", { class: "error" }, error.message));
      more.replaceChildren();
      return;
    }
    const rows = answer.changes.map((c) => changeRow(c, picked));
    const body = out.querySelector("tbody");
    if (cursor && body) body.append(...rows);
    else out.replaceChildren(table(["When", "Action", "Type", "Source → target", "Changes", "Job", ...(picked ? ["Select"] : [])], rows, "No changes match."));
    const shown = out.querySelectorAll("tbody tr").length;
    more.replaceChildren(
      answer.nextCursor ? button("More", () => load(q, answer.nextCursor)) : "",
      shown ? h("span", { class: "hint" }, `${shown} shown${answer.nextCursor ? "" : ", no more"}`) : "",
    );
  }
  if (picked) {
    picked.watch(() => {
      for (const box of out.querySelectorAll("input[data-pick-id]")) box.checked = picked.has(box.dataset.pickType, box.dataset.pickId);
    });
  }
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "changes", novalidate: true },
    h("h2", { id: "changes" }, "Provisioning log"),
    h("div", { class: "filters log-filters" }, filters.map((f) => f.box)),
    h("button", { type: "submit" }, "Show changes"),
    out,
    more,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = query();
    if (q) load(q, null);
  });
  load(query(), null);
  return form;
}
