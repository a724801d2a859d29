// The sluiced web console: plain ES modules, no build step. Every page is drawn from
// the control API's JSON; a job's progress and log come over its event stream. Requests
// that change state carry the session's CSRF token (X-CSRF-Token). This module routes
// the address's #fragment to its page (integrations.js, jobs.js).

import { h, main, notice } from "./dom.js";
import { integrationPage, integrationsPage } from "./integrations.js";
import { jobPage, jobsPage } from "./jobs.js";
import { state } from "./api.js";

let renders = 0;

async function render() {
  for (const stop of state.cleanup.splice(0)) stop();
  const mine = ++renders;
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
  // A page that took longer than the next one to load is not shown over it (its timers
  // and streams are in the list the next navigation stops).
  if (mine !== renders) return;
  main.replaceChildren(...[page].flat(Infinity));
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#/${parts[0] || "integrations"}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

state.render = render;

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
