// The jobs: the list with its filters, and one job live over its event stream.

import { act, changeList, duration, h, pairs, show, statusBadge, table, when } from "./dom.js";
import { enc, get, jobTypes, post, request, state } from "./api.js";

export const STATUSES = ["queued", "running", "paused", "stopping", "completed", "failed", "stopped"];

export async function jobsPage(params) {
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
      h("td", {}, statusBadge(j.status, j.completedWithErrors)),
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

export function planSection(plan) {
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

export async function jobPage(id) {
  const base = `/api/sync/jobs/${enc(id)}`;
  const job = await get(base);
  const bar = h("progress", { id: "job-progress", max: 100, value: job.progress });
  const fields = {
    status: h("span", { id: "job-status" }),
    stage: h("span", { id: "job-stage" }),
    progress: h("span", { id: "job-percent" }),
    error: h("span", { id: "job-error" }),
    started: h("span", { id: "job-started" }),
    ended: h("span", { id: "job-ended" }),
  };
  const stats = h("div", { id: "job-stats" });
  const log = h("ol", { id: "job-log", class: "log" });
  const planBox = h("div");
  function update(j) {
    fields.status.replaceChildren(statusBadge(j.status, j.completedWithErrors));
    fields.stage.textContent = j.stage || "—";
    fields.progress.textContent = `${j.progress} %`;
    fields.error.textContent = j.error || "—";
    fields.started.replaceChildren(when(j.startedAt));
    const took = j.duration === null || j.duration === undefined ? "" : ` (${duration(j.duration / 1000)})`;
    if (j.completedAt) fields.ended.replaceChildren(when(j.completedAt), took);
    else if (j.estimatedCompletion) fields.ended.replaceChildren("expected ", when(j.estimatedCompletion));
    else fields.ended.replaceChildren("—");
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
  // The daemon ends the stream when the session ends (a logout in any tab, or expiry);
  // the browser's reconnection is then refused: back to the login.
  events.addEventListener("error", async () => {
    if (events.readyState !== EventSource.CLOSED) return;
    const session = await fetch("/console/session", { credentials: "same-origin" });
    if (session.status === 401) location.assign("/console/login");
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
        ["Started", fields.started],
        ["Ended", fields.ended],
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
