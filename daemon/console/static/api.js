// The control API as the console's pages call it: JSON over fetch, with the session's
// CSRF token on every request that changes state, and what the daemon says of itself.
// What the pages share: the session's CSRF token, what the daemon said of itself, the
// page's clean-up (timers, event streams) and render (app.js).

export const state = { render: null, csrf: null, jobTypes: null, keyedTargets: null, openapi: null, cleanup: [] };
export const REFRESH_MS = 5000;

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.field = error.field || null;
    this.code = error.code || null;
  }
}

export async function request(method, path, body) {
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
export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const enc = encodeURIComponent;

export async function jobTypes() {
  if (state.jobTypes === null) state.jobTypes = (await get("/console/job-types")).jobTypes;
  return state.jobTypes;
}

// The target connectors that hold objects under their source ids (mirrors).
export async function keyedTargets() {
  if (state.keyedTargets === null) state.keyedTargets = (await get("/console/keyed-targets")).keyedTargets;
  return state.keyedTargets;
}

export async function openapi() {
  if (state.openapi === null) state.openapi = await get("/api/openapi.json");
  return state.openapi;
}

// Whether this daemon's API has the route *path* (a plugin or a newer version may add it).
export async function hasRoute(path) {
  return path in (await openapi()).paths;
}

export async function resetScopes() {
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
