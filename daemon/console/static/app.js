// The sluiced web console: one module, no build step. Every page is drawn from the
// control API's JSON; a job's progress and log come over its event stream. Requests
// that change state carry the session's CSRF token (X-CSRF-Token).

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const state = { csrf: null, jobTypes: null, keyedTargets: null, openapi: null, cleanup: [] };
const REFRESH_MS = 5000;

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.field = error.field || null;
    this.code = error.code || null;
  }
}

// -- the API ----------------------------------------------------------------------------
async function request(method, path, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    options.headers["X-CSRF-Token"] = state.csrf;
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    location.assign("/console/login");
    throw new ApiError(401, { message: "the session ended: log in again" });
  }
  const json = (response.headers.get("content-type") || "").includes("json");
  const data = json ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || {});
  return data;
}
const get = (path) => request("GET", path);
const post = (path, body) => request("POST", path, body);
const enc = encodeURIComponent;

async function jobTypes() {
  if (state.jobTypes === null) state.jobTypes = (await get("/console/job-types")).jobTypes;
  return state.jobTypes;
}

// The target connectors that hold objects under their source ids (mirrors).
async function keyedTargets() {
  if (state.keyedTargets === null) state.keyedTargets = (await get("/console/keyed-targets")).keyedTargets;
  return state.keyedTargets;
}

async function openapi() {
  if (state.openapi === null) state.openapi = await get("/api/openapi.json");
  return state.openapi;
}

// Whether this daemon's API has the route *path* (a plugin or a newer version may add it).
async function hasRoute(path) {
  return path in (await openapi()).paths;
}

async function resetScopes() {
  await openapi();
  try {
    const op = state.openapi.paths["/api/sync/integrations/{integrationId}/restart"].post;
    const schema = op.requestBody.content["application/json"].schema;
    const scope = schema.properties.criteria.properties.resetScope;
    return scope.anyOf.find((s) => s.type === "array").items.enum;
  } catch {
    return [];
  }
}

// -- drawing ----------------------------------------------------------------------------
function h(tag, attrs, ...children) {
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

function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return h("time", { datetime: value, title: value }, date.toLocaleString());
}

function pairs(rows) {
  return h(
    "dl",
    { class: "pairs" },
    rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]),
  );
}

function say(message, kind = "ok", link = null) {
  notice.replaceChildren(h("p", { class: `notice ${kind}` }, message, link ? [" ", link] : []));
}

function failed(error) {
  say(error.message || String(error), "error");
}

function button(label, onclick, attrs = {}) {
  return h("button", { type: "button", ...attrs, onclick }, label);
}

// An action button: runs *action*, says what happened, then calls *after*.
function act(label, action, after, attrs = {}) {
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

function table(headings, rows, empty) {
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

function percent(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 1000) / 10} %`;
}

function show(value) {
  if (value === undefined) return "∅";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// Each changed attribute as "name: before → after".
function changeList(changes, attributes) {
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

// -- integrations -----------------------------------------------------------------------
function statusBadge(code) {
  return h("span", { class: `badge ${String(code).toLowerCase()}` }, code);
}

function summary(status, integration) {
  const q = integration.status.quarantine;
  const stats = status.stats || {};
  const job = status.currentJob;
  return pairs([
    ["Status", statusBadge(integration.status.code)],
    ["Schedule", `every ${status.syncInterval} s (${integration.schedule.state})`],
    ["Last sync", when(status.lastSync)],
    ["Next run", when(status.nextSync)],
    ["Last result", status.lastResult ? [status.lastResult, status.lastError ? `: ${status.lastError}` : ""] : "—"],
    ["Success rate", stats.totalJobs ? `${percent(stats.successRate)} of ${stats.totalJobs} jobs` : "—"],
    job && ["Current job", h("a", { href: `#/jobs/${job.id}` }, `${job.id} (${job.status}, ${job.progress} %)`)],
    q && [
      "Quarantine",
      h(
        "span",
        { class: "quarantine" },
        `${q.reason} since `,
        when(q.currentBegan),
        q.error ? ` — ${q.error.message}` : "",
        "; next attempt ",
        when(q.nextAttempt),
      ),
    ],
  ]);
}

async function actions(id, scopes, refresh) {
  const base = `/api/sync/integrations/${enc(id)}`;
  const checks = scopes.map((s) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "resetScope", value: s }), ` ${s}`),
  );
  const restart = h(
    "details",
    { class: "restart" },
    h("summary", {}, "Restart…"),
    h(
      "fieldset",
      {},
      h("legend", {}, "Reset before the full sync"),
      checks,
      act(
        "Restart",
        () => {
          const resetScope = checks.map((c) => c.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
          return post(`${base}/restart`, { criteria: { resetScope } });
        },
        refresh,
      ),
    ),
  );
  const validate = act("Validate credentials", async () => {
    const r = await post(`${base}/validate-credentials`);
    const part = (end) => `${end} ${r[end].ok ? "ok" : "failed"}${r[end].message ? ` (${r[end].message})` : ""}`;
    return { message: `${part("source")}, ${part("target")}` };
  });
  return h(
    "div",
    { class: "actions", role: "group", "aria-label": `Actions of ${id}` },
    act("Start", () => post(`${base}/start`, { scheduleImmediate: false }), refresh),
    act("Pause", () => post(`${base}/pause`), refresh),
    act("Stop", () => post(`${base}/stop`), refresh),
    act("Run incremental", () => post(`${base}/start`, { syncType: "incremental" }), refresh),
    act("Run full", () => post(`${base}/start`, { syncType: "full" }), refresh),
    validate,
    restart,
  );
}

async function integrationsPage() {
  const [status, list, scopes] = await Promise.all([
    get("/api/sync/integrations/status"),
    get("/api/sync/integrations"),
    resetScopes(),
  ]);
  const byId = Object.fromEntries(list.value.map((i) => [i.id, i]));
  const cards = [];
  const summaries = {};
  for (const s of status.integrations) {
    const integration = byId[s.integrationId];
    if (!integration) continue;
    summaries[s.integrationId] = summary(s, integration);
    cards.push(
      h(
        "section",
        { class: "card", "aria-labelledby": `i-${s.integrationId}` },
        h("h2", { id: `i-${s.integrationId}` }, h("a", { href: `#/integrations/${s.integrationId}` }, s.name || s.integrationId)),
        summaries[s.integrationId],
        await actions(s.integrationId, scopes, render),
      ),
    );
  }
  // The figures follow the daemon (every few seconds); the buttons and focus stay put.
  const timer = setInterval(async () => {
    if (document.hidden) return;
    try {
      const [now, all] = await Promise.all([get("/api/sync/integrations/status"), get("/api/sync/integrations")]);
      const fresh = Object.fromEntries(all.value.map((i) => [i.id, i]));
      for (const s of now.integrations) {
        const old = summaries[s.integrationId];
        if (!old || !fresh[s.integrationId]) continue;
        summaries[s.integrationId] = summary(s, fresh[s.integrationId]);
        old.replaceWith(summaries[s.integrationId]);
      }
    } catch {
      // the next tick tries again; a lost session has already sent the page to the login
    }
  }, REFRESH_MS);
  state.cleanup.push(() => clearInterval(timer));
  return [h("h1", { tabindex: "-1" }, "Integrations"), cards.length ? cards : h("p", { class: "empty" }, "No integrations.")];
}

function stashForms(id, kinds, target) {
  const names = new Set(kinds.filter((k) => k.targets.includes(target)).map((k) => k.name));
  const out = [];
  if (names.has("sync")) {
    const boxes = [
      ["full_resync", "Full Resync (ignore timestamps)", false],
      ["include_scenes", "Include Scenes", true],
      ["include_performers", "Include Performers", true],
      ["include_tags", "Include Tags", true],
      ["include_studios", "Include Studios", true],
    ].map(([name, label, on]) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name, checked: on }), ` ${label}`),
    );
    const form = h(
      "form",
      { class: "card", "aria-labelledby": "sync-from-stash" },
      h("h2", { id: "sync-from-stash" }, "Sync from Stash"),
      h("fieldset", {}, h("legend", {}, "What to sync"), boxes),
      h("button", { type: "submit" }, "Sync from Stash"),
    );
    form.addEventListener("submit", (event) =>
      submitJob(event, () => {
        const metadata = Object.fromEntries(boxes.map((b) => b.querySelector("input")).map((i) => [i.name, i.checked]));
        return { job_type: "sync", integrationId: id, metadata };
      }),
    );
    out.push(form);
  }
  if (names.has("sync_scenes")) {
    const field = h("input", { id: "scene-ids", name: "scene_ids", type: "text", required: true, inputmode: "numeric", autocomplete: "off" });
    const form = h(
      "form",
      { class: "card", "aria-labelledby": "sync-scenes" },
      h("h2", { id: "sync-scenes" }, "Sync Scenes"),
      h("label", { for: "scene-ids" }, "Scene IDs"),
      field,
      h("p", { class: "hint" }, "Separated by commas or spaces."),
      h("button", { type: "submit" }, "Sync Scenes"),
    );
    form.addEventListener("submit", (event) =>
      submitJob(event, () => ({
        job_type: "sync_scenes",
        integrationId: id,
        metadata: { scene_ids: field.value.split(/[\s,]+/).filter(Boolean) },
      })),
    );
    out.push(form);
  }
  return out;
}

async function submitJob(event, body) {
  event.preventDefault();
  try {
    const job = await post("/api/sync/jobs", body());
    const jobId = job.id || job.jobId;
    say(`Queued job ${jobId}`);
    location.hash = `#/jobs/${jobId}`;
  } catch (error) {
    failed(error);
  }
}

function escrowSection(id, escrows, refresh) {
  const base = `/api/sync/integrations/${enc(id)}/escrows`;
  const rows = escrows.escrows.map((e) => {
    const key = { entityType: e.entityType, objectId: e.objectId };
    return h(
      "tr",
      {},
      h("td", {}, e.entityType),
      h("td", {}, h("code", {}, e.objectId)),
      h("td", {}, e.kind),
      h("td", {}, e.reason),
      h("td", {}, e.attempts),
      h("td", {}, when(e.nextRetry)),
      h(
        "td",
        { class: "actions" },
        act("Retry", () => post(`${base}/retry`, key), refresh, { "aria-label": `Retry ${e.entityType} ${e.objectId}` }),
        act("Drop", () => post(`${base}/drop`, key), refresh, { "aria-label": `Drop ${e.entityType} ${e.objectId}` }),
      ),
    );
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "escrows" },
    h("h2", { id: "escrows" }, `Escrows (${escrows.total})`),
    table(["Type", "Object", "Kind", "Reason", "Attempts", "Next retry", ""], rows, "Nothing in escrow."),
  );
}

function provisionSection(id, entityTypes) {
  const object = h("input", { id: "pod-object", name: "objectId", required: true, autocomplete: "off" });
  const type = h("select", { id: "pod-type", name: "entityType" }, entityTypes.map((t) => h("option", { value: t }, t)));
  const dry = h("input", { id: "pod-dry", type: "checkbox", name: "dryRun" });
  const trace = h("div", { class: "trace", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "pod" },
    h("h2", { id: "pod" }, "Provision on demand"),
    h("label", { for: "pod-object" }, "Source object id"),
    object,
    h("label", { for: "pod-type" }, "Entity type"),
    type,
    h("label", { class: "check", for: "pod-dry" }, dry, " Dry run (only say what would happen)"),
    h("button", { type: "submit" }, "Provision"),
    trace,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const r = await post(`/api/sync/integrations/${enc(id)}/provision-on-demand`, {
        objectId: object.value,
        entityType: type.value,
        dryRun: dry.checked,
      });
      trace.replaceChildren(
        h("h3", {}, `Steps${r.jobId ? ` (job ${r.jobId})` : ""}`),
        h(
          "ol",
          { class: "steps" },
          r.steps.map((s) => {
            const { step, status, ...rest } = s;
            const more = Object.keys(rest).length ? h("pre", {}, JSON.stringify(rest, null, 2)) : "";
            return h("li", {}, h("strong", {}, step), " ", statusBadge(status), more);
          }),
        ),
      );
    } catch (error) {
      trace.replaceChildren(h("p", { class: "error" }, error.message));
    }
  });
  return form;
}

// JSON text with 2-space indents, and where each JSON path (a.b[0].c) starts and ends in it.
function located(value) {
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

function schemaSection(id, schema) {
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

const ACTIONS = ["create", "update", "enable", "disable", "delete", "escrow", "drop"];
const TIME_TEXT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$/;

// "+02:00" for a UTC offset of *minutes* east.
function offsetText(minutes) {
  const sign = minutes < 0 ? "-" : "+";
  const m = Math.abs(minutes);
  return `${sign}${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
}

// A time as typed (a date, a date and time, with or without an offset) as the RFC 3339
// time the API takes: without an offset, it is this browser's local time, with the
// offset it has on that day. Throws an Error saying what is expected for anything else.
function rfc3339(text) {
  const m = TIME_TEXT.exec(text.trim());
  const expected = new Error("expected a date and time, as 2025-06-01 14:30 (this browser's time zone) or 2025-06-01T14:30:00+02:00");
  if (!m) throw expected;
  const [, y, mo, d, hh = "00", mi = "00", ss = "00", frac = "", zone] = m;
  const local = new Date(Number(y), Number(mo) - 1, Number(d), Number(hh), Number(mi), Number(ss));
  const same = local.getFullYear() === Number(y) && local.getMonth() === Number(mo) - 1 && local.getDate() === Number(d);
  if (!same || Number(hh) > 23 || Number(mi) > 59 || Number(ss) > 59) throw expected;
  let offset;
  if (zone === undefined) offset = offsetText(-local.getTimezoneOffset());
  else if (zone.toUpperCase() === "Z") offset = "Z";
  else offset = zone.includes(":") ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  return `${y}-${mo}-${d}T${hh}:${mi}:${ss}${frac}${offset}`;
}

// One labelled filter of the provisioning log, with the place its error is shown.
function filterField(name, label, control, hint) {
  control.id = `ch-${name}`;
  control.name = name;
  const error = h("p", { id: `ch-${name}-error`, class: "error field-error", role: "alert", hidden: true });
  const help = hint ? h("p", { id: `ch-${name}-hint`, class: "hint" }, hint) : null;
  control.setAttribute("aria-describedby", [help && help.id, error.id].filter(Boolean).join(" "));
  const box = h("div", {}, h("label", { for: control.id }, label), control, help, error);
  return { name, control, error, box };
}

function changeRow(c) {
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
  );
}

function changesSection(id, entityTypes) {
  const choice = (options) => h("select", {}, h("option", { value: "" }, "all"), options.map((o) => h("option", { value: o }, o)));
  const text = () => h("input", { type: "text", autocomplete: "off" });
  const zone = offsetText(-new Date().getTimezoneOffset());
  const timeHint = `Without an offset: this browser's time, UTC${zone}.`;
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
    const rows = answer.changes.map(changeRow);
    const body = out.querySelector("tbody");
    if (cursor && body) body.append(...rows);
    else out.replaceChildren(table(["When", "Action", "Type", "Source → target", "Changes", "Job"], rows, "No changes match."));
    const shown = out.querySelectorAll("tbody tr").length;
    more.replaceChildren(
      answer.nextCursor ? button("More", () => load(q, answer.nextCursor)) : "",
      shown ? h("span", { class: "hint" }, `${shown} shown${answer.nextCursor ? "" : ", no more"}`) : "",
    );
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

// What an integration whose target is keyed by source ids (a mirror) has instead of a
// schema: the API refuses any, the target takes records as the source returns them.
function keyedSchemaSection(id, target) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "schema" },
    h("h2", { id: "schema" }, "Schema"),
    h(
      "p",
      { id: "schema-keyed" },
      `${id} writes into a target keyed by source ids (${target}), which takes records as the source returns them: `,
      "it has no schema to edit, and no dry run or provisioning on demand (they need the links such a target does not keep). ",
      "Its jobs above are how it syncs.",
    ),
  );
}

async function integrationPage(id) {
  const base = `/api/sync/integrations/${enc(id)}`;
  const [status, integration, kinds, scopes, escrows, keyed] = await Promise.all([
    get("/api/sync/integrations/status"),
    get(base),
    jobTypes(),
    resetScopes(),
    get(`${base}/escrows`),
    keyedTargets(),
  ]);
  const s = status.integrations.find((x) => x.integrationId === id);
  const mirror = keyed.includes(integration.target.connector);
  const schema = mirror ? null : await get(`${base}/schema`).catch((error) => error);
  const refresh = () => render();
  const dryRun = act(
    "Dry run",
    () => post("/api/sync/jobs", { integrationId: id, type: "full_sync", options: { dryRun: true } }),
    (answer) => {
      location.hash = `#/jobs/${answer.jobId}`;
    },
  );
  return [
    h("h1", { tabindex: "-1" }, integration.name || id),
    h("p", {}, h("a", { href: `#/jobs?integration=${enc(id)}` }, "Jobs of this integration"), " · ", `${integration.source.connector} → ${integration.target.connector}`),
    h("section", { class: "card", "aria-label": "Status" }, summary(s, integration), await actions(id, scopes, refresh), mirror ? "" : h("div", { class: "actions" }, dryRun)),
    stashForms(id, kinds, integration.target.connector),
    escrowSection(id, escrows, refresh),
    mirror ? "" : provisionSection(id, integration.entityTypes),
    mirror
      ? keyedSchemaSection(id, integration.target.connector)
      : schema instanceof Error
        ? h("p", { class: "error" }, `Schema: ${schema.message}`)
        : schemaSection(id, schema),
    changesSection(id, integration.entityTypes),
  ];
}

// -- jobs -------------------------------------------------------------------------------
const STATUSES = ["queued", "running", "paused", "stopping", "completed", "failed", "stopped"];

async function jobsPage(params) {
  const [list, kinds] = await Promise.all([get("/api/sync/integrations"), jobTypes()]);
  const query = new URLSearchParams({ limit: "200" });
  if (params.get("integration")) query.set("integrationId", params.get("integration"));
  if (params.get("status")) query.set("status", params.get("status"));
  const jobs = await get(`/api/sync/jobs?${query}`);
  const type = params.get("type") || "";
  const shown = jobs.jobs.filter((j) => !type || j.type === type);
  const select = (id, label, name, options, current) =>
    h(
      "div",
      {},
      h("label", { for: id }, label),
      h("select", { id, name }, h("option", { value: "" }, "all"), options.map((o) => h("option", { value: o, selected: o === current }, o))),
    );
  const types = [...new Set(["full_sync", "incremental_sync", "selective_sync", ...kinds.map((k) => k.name), ...jobs.jobs.map((j) => j.type)])];
  const form = h(
    "form",
    { class: "filters card", "aria-label": "Filters" },
    select("f-integration", "Integration", "integration", list.value.map((i) => i.id), params.get("integration")),
    select("f-status", "Status", "status", STATUSES, params.get("status")),
    select("f-type", "Type", "type", types, type),
    h("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const el of form.querySelectorAll("select")) if (el.value) next.set(el.name, el.value);
    location.hash = `#/jobs?${next}`;
  });
  const rows = shown.map((j) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/jobs/${j.id}` }, j.id)),
      h("td", {}, j.integrationId),
      h("td", {}, j.type),
      h("td", {}, statusBadge(j.status)),
      h("td", {}, `${j.progress} %`),
      h("td", {}, when(j.createdAt)),
    ),
  );
  return [
    h("h1", { tabindex: "-1" }, "Jobs"),
    form,
    table(["Job", "Integration", "Type", "Status", "Progress", "Created"], rows, "No jobs match."),
  ];
}

function planSection(plan) {
  const rows = plan.entries.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, e.action),
      h("td", {}, e.entityType ?? "—"),
      h("td", {}, h("code", {}, e.sourceId ?? "—"), " → ", h("code", {}, e.targetId ?? "—")),
      h("td", {}, changeList(e.changes, e.attributes), e.gate ? h("p", {}, show(e.gate)) : ""),
    ),
  );
  const counts = Object.entries(plan.summary).map(([k, v]) => `${k}: ${v}`).join(", ");
  return h(
    "section",
    { class: "card", "aria-labelledby": "plan" },
    h("h2", { id: "plan" }, "Dry run plan"),
    h("p", {}, `${plan.total} changes${counts ? ` (${counts})` : ""}`),
    table(["Action", "Type", "Source → target", "Before → after"], rows, "Nothing would change."),
  );
}

async function jobPage(id) {
  const base = `/api/sync/jobs/${enc(id)}`;
  const job = await get(base);
  const bar = h("progress", { id: "job-progress", max: 100, value: job.progress });
  const fields = {
    status: h("span", { id: "job-status" }),
    stage: h("span", { id: "job-stage" }),
    progress: h("span", { id: "job-percent" }),
    error: h("span", { id: "job-error" }),
  };
  const stats = h("div", { id: "job-stats" });
  const log = h("ol", { id: "job-log", class: "log" });
  const planBox = h("div");
  function update(j) {
    fields.status.replaceChildren(statusBadge(j.status));
    fields.stage.textContent = j.stage || "—";
    fields.progress.textContent = `${j.progress} %`;
    fields.error.textContent = j.error || "—";
    bar.value = j.progress;
    const st = j.stats || j.result || {};
    stats.replaceChildren(pairs(Object.entries(st).map(([k, v]) => [k, String(v)])));
  }
  update(job);
  async function showPlan() {
    if (!job.parameters || !job.parameters.dry_run) return;
    try {
      planBox.replaceChildren(planSection(await get(`${base}/plan?limit=1000`)));
    } catch (error) {
      planBox.replaceChildren(h("p", { class: "empty" }, `Plan: ${error.message}`));
    }
  }
  const events = new EventSource(`${base}/events`);
  state.cleanup.push(() => events.close());
  events.addEventListener("progress", (e) => update(JSON.parse(e.data)));
  events.addEventListener("log", (e) => {
    const line = JSON.parse(e.data);
    log.append(h("li", { class: `level-${line.level}` }, when(line.timestamp), ` ${line.level} `, line.message));
  });
  events.addEventListener("end", async () => {
    events.close();
    update(await get(base));
    await showPlan();
  });
  const after = async () => update(await get(base));
  const deleted = () => {
    location.hash = "#/jobs";
  };
  return [
    h("h1", { tabindex: "-1" }, `Job ${id}`),
    h(
      "section",
      { class: "card", "aria-label": "Progress" },
      h("label", { for: "job-progress" }, "Progress "),
      bar,
      " ",
      fields.progress,
      pairs([
        ["Integration", h("a", { href: `#/integrations/${job.integrationId}` }, job.integrationId)],
        ["Type", job.type],
        ["Status", fields.status],
        ["Stage", fields.stage],
        ["Parameters", h("code", {}, JSON.stringify(job.parameters))],
        ["Created", when(job.createdAt)],
        ["Error", fields.error],
      ]),
      h(
        "div",
        { class: "actions" },
        act("Resume", () => post(`${base}/resume`), after),
        act("Stop", () => post(`${base}/stop`), after),
        act("Delete", () => request("DELETE", base, {}), deleted),
      ),
    ),
    h("section", { class: "card", "aria-labelledby": "stats" }, h("h2", { id: "stats" }, "Stats"), stats),
    h("details", { class: "card", id: "job-log-box" }, h("summary", {}, "Log"), log),
    planBox,
  ];
}

// -- routing ----------------------------------------------------------------------------
async function render() {
  for (const stop of state.cleanup.splice(0)) stop();
  const [path, query] = (location.hash.slice(1) || "/integrations").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  let page;
  try {
    if (parts[0] === "jobs" && parts[1]) page = await jobPage(parts[1]);
    else if (parts[0] === "jobs") page = await jobsPage(params);
    else if (parts[0] === "integrations" && parts[1]) page = await integrationPage(parts[1]);
    else page = await integrationsPage();
  } catch (error) {
    page = [h("h1", { tabindex: "-1" }, "Something went wrong"), h("p", { class: "error" }, error.message)];
  }
  main.replaceChildren(...[page].flat(Infinity));
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#/${parts[0] || "integrations"}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function start() {
  const response = await fetch("/console/session", { credentials: "same-origin" });
  if (!response.ok) {
    location.assign("/console/login");
    return;
  }
  state.csrf = (await response.json()).csrfToken;
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/console/logout", { method: "POST", headers: { "X-CSRF-Token": state.csrf }, credentials: "same-origin" });
    location.assign("/console/login");
  });
  window.addEventListener("hashchange", async () => {
    notice.replaceChildren();
    await render();
    const heading = main.querySelector("h1");
    if (heading) heading.focus();
  });
  await render();
}

start();
