// The integrations: the list with each one's figures and buttons, and one
// integration's page (its job forms, escrows, provisioning on demand, schema and log).

import { REFRESH_MS, enc, get, jobTypes, keyedTargets, post, resetScopes, state } from "./api.js";
import { act, duration, h, pairs, percent, statusBadge, table, when } from "./dom.js";
import { changesSection } from "./changes.js";
import { jobForms, pickTypes, picks } from "./jobforms.js";
import { schemaSection } from "./schema.js";

// The last run as seed 003's lastExecution says it: how it ended, when, and its counts.
export function lastRun(run) {
  if (!run) return null;
  const counts = [
    ["imported", run.countImported],
    ["exported", run.countExported],
    ["escrowed", run.countEscrowed],
    ["deleted", run.countDeleted],
  ].filter(([, n]) => n !== undefined && n !== null);
  return [
    "Last run",
    [
      statusBadge(run.state),
      " ",
      when(run.timeEnded || run.timeBegan),
      counts.length ? ` — ${counts.map(([k, n]) => `${n} ${k}`).join(", ")}` : "",
    ],
  ];
}

export function summary(status, integration) {
  const q = integration.status.quarantine;
  const stats = status.stats || {};
  const job = status.currentJob;
  const average = stats.averageDuration === null || stats.averageDuration === undefined ? "" : `, ${duration(stats.averageDuration / 1000)} on average`;
  return pairs([
    ["Status", statusBadge(integration.status.code)],
    ["Schedule", `every ${duration(status.syncInterval)} (${integration.schedule.state})`],
    ["Last sync", when(status.lastSync)],
    lastRun(integration.status.lastExecution),
    ["Next run", when(status.nextSync)],
    ["Last result", status.lastResult ? [status.lastResult, status.lastError ? `: ${status.lastError}` : ""] : "—"],
    ["Success rate", stats.totalJobs ? `${percent(stats.successRate)} of ${stats.totalJobs} jobs${average}` : "—"],
    job && ["Current job", h("a", { href: `#/jobs/${job.id}` }, `${job.id} (${job.status}, ${job.progress} %)`)],
    q && [
      "Quarantine",
      h(
        "span",
        { class: "quarantine" },
        `${q.reason} since `,
        when(q.currentBegan),
        q.error ? ` — ${q.error.message}` : "",
        q.nextAttempt ? ["; next attempt ", when(q.nextAttempt)] : "; no attempt before Start or Restart",
        q.seriesCount ? [`; quarantined ${q.seriesCount} ${q.seriesCount === 1 ? "time" : "times"} in a row since `, when(q.seriesBegan)] : "",
      ),
    ],
  ]);
}

// Keep *summaries* (by integration id) following the daemon every few seconds, in
// place: the buttons and the focus stay put.
export function follow(summaries) {
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
}

export async function actions(id, scopes, refresh) {
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

export async function integrationsPage() {
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
        await actions(s.integrationId, scopes, () => state.render()),
      ),
    );
  }
  follow(summaries);
  return [h("h1", { tabindex: "-1" }, "Integrations"), cards.length ? cards : h("p", { class: "empty" }, "No integrations.")];
}

export function escrowSection(id, escrows, refresh) {
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

export function provisionSection(id, entityTypes) {
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

// What an integration whose target is keyed by source ids (a mirror) has instead of a
// schema: the API refuses any, the target takes records as the source returns them.
export function keyedSchemaSection(id, target) {
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

// An integration the daemon no longer has: its provisioning log, while it lasts.
async function removedPage(id, base) {
  const sample = await get(`${base}/changes?limit=200`);
  const types = [...new Set(sample.changes.map((c) => c.entityType))].sort();
  return [
    h("h1", { tabindex: "-1" }, id),
    h("p", {}, "This integration is no longer configured. Its provisioning log stays until its retention prunes it."),
    changesSection(id, types),
  ];
}

export async function integrationPage(id) {
  const base = `/api/sync/integrations/${enc(id)}`;
  let integration;
  try {
    integration = await get(base);
  } catch (error) {
    if (error.status !== 404) throw error;
    try {
      return await removedPage(id, base);
    } catch {
      throw error; // no log either: the integration is unknown
    }
  }
  const [status, kinds, scopes, escrows, keyed] = await Promise.all([
    get("/api/sync/integrations/status"),
    jobTypes(),
    resetScopes(),
    get(`${base}/escrows`),
    keyedTargets(),
  ]);
  const s = status.integrations.find((x) => x.integrationId === id);
  const mirror = keyed.includes(integration.target.connector);
  const schema = mirror ? null : await get(`${base}/schema`).catch((error) => error);
  const refresh = () => state.render();
  const types = pickTypes(kinds, integration.target.connector, integration.entityTypes);
  const picked = types.length ? picks(types) : null;
  const summaries = { [id]: summary(s, integration) };
  follow(summaries);
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
    h("section", { class: "card", "aria-label": "Status" }, summaries[id], await actions(id, scopes, refresh), mirror ? "" : h("div", { class: "actions" }, dryRun)),
    jobForms(id, kinds, integration.target.connector, picked),
    escrowSection(id, escrows, refresh),
    mirror ? "" : provisionSection(id, integration.entityTypes),
    mirror
      ? keyedSchemaSection(id, integration.target.connector)
      : schema instanceof Error
        ? h("p", { class: "error" }, `Schema: ${schema.message}`)
        : schemaSection(id, schema),
    changesSection(id, integration.entityTypes, picked),
  ];
}
