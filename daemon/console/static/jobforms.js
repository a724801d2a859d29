// The forms plugins declare for their job types (/console/job-types), drawn generically.

import { failed, h, say } from "./dom.js";
import { post } from "./api.js";

// The ids typed into an id list, split at its declared separators (a space in them
// stands for any whitespace).
export function splitIds(text, separators) {
  const chars = [...new Set(separators)];
  const classes = chars.map((c) => (c === " " ? "\\s" : c.replace(/[\\\]^-]/g, "\\$&"))).join("");
  return text.split(new RegExp(`[${classes}]+`)).map((id) => id.trim()).filter(Boolean);
}

// The objects picked in the provisioning log for the id lists that take them (their
// declared *types*), by entity type; *watch* is called on each change.
export function picks(types) {
  const chosen = new Map(types.map((t) => [t, new Set()]));
  const watchers = [];
  return {
    takes: (type) => chosen.has(type),
    has: (type, id) => Boolean(chosen.get(type) && chosen.get(type).has(id)),
    ids: (type) => [...(chosen.get(type) || [])],
    set(type, id, on) {
      if (on) chosen.get(type).add(id);
      else chosen.get(type).delete(id);
      for (const watcher of watchers) watcher();
    },
    watch: (watcher) => watchers.push(watcher),
  };
}

// The entity types whose objects the job forms of *target* let one pick, among *entityTypes*.
export function pickTypes(kinds, target, entityTypes) {
  const types = kinds
    .filter((k) => k.targets.includes(target))
    .flatMap((k) => (k.console || []).flatMap((spec) => spec.fields.map((f) => f.pick)))
    .filter((t) => t && entityTypes.includes(t));
  return [...new Set(types)];
}

// *ids* added to the text of *input*, each once, joined by the list's first separator.
function addIds(input, field, ids) {
  const had = splitIds(input.value, field.separators);
  const joint = field.separators.includes(",") ? ", " : field.separators.includes(" ") ? " " : field.separators[0];
  input.value = [...new Set([...had, ...ids])].join(joint);
}

// One declared field of a job form: its control(s), and how it fills the metadata.
export function formField(prefix, field, picked) {
  const id = `${prefix}-${field.name}`;
  if (field.kind === "checkbox") {
    const input = h("input", { id, type: "checkbox", name: field.name, checked: field.default });
    return { box: h("label", { class: "check", for: id }, input, ` ${field.label}`), check: true, value: () => input.checked };
  }
  const error = h("p", { id: `${id}-error`, class: "error field-error", role: "alert", hidden: true });
  const hint = field.hint ? h("p", { id: `${id}-hint`, class: "hint" }, field.hint) : null;
  const input = h("input", {
    id,
    name: field.name,
    type: "text",
    required: field.required,
    inputmode: field.inputmode,
    autocomplete: "off",
    "aria-describedby": [hint && hint.id, error.id].filter(Boolean).join(" "),
  });
  const ids = () => splitIds(input.value, field.separators);
  let pick = null;
  if (field.pick && picked && picked.takes(field.pick)) {
    const label = () => `Add the ${field.pick} ids selected in the provisioning log (${picked.ids(field.pick).length})`;
    pick = h("button", { type: "button", class: "quiet pick", disabled: true }, label());
    pick.addEventListener("click", () => {
      addIds(input, field, picked.ids(field.pick));
      input.focus();
    });
    picked.watch(() => {
      pick.textContent = label();
      pick.disabled = !picked.ids(field.pick).length;
    });
  }
  return {
    box: h("div", { class: "field" }, h("label", { for: id }, field.label), input, hint, error, pick),
    input,
    error,
    value: ids,
    // What is wrong with the ids typed (null: nothing).
    problem: () => (field.required && !ids().length ? `${field.label}: type at least one id` : null),
  };
}

// The forms the plugins declare for the job types *target*'s integrations run, drawn
// from /console/job-types; each posts {job_type, integrationId, metadata}. An id list
// that takes picks fills from *picked* too.
export function jobForms(id, kinds, target, picked = null) {
  const out = [];
  kinds
    .filter((k) => k.targets.includes(target))
    .forEach((kind) =>
      (kind.console || []).forEach((spec) => {
        const prefix = `jf-${out.length}`;
        const fields = spec.fields.map((f) => ({ ...formField(prefix, f, picked), name: f.name }));
        const parts = [];
        for (const f of fields) {
          const last = parts[parts.length - 1];
          if (f.check && last && last.check) last.items.push(f.box);
          else parts.push({ check: Boolean(f.check), items: [f.box] });
        }
        const form = h(
          "form",
          { class: "card job-form", "aria-labelledby": `${prefix}-title`, novalidate: true },
          h("h2", { id: `${prefix}-title` }, spec.title),
          parts.map((p) => (p.check ? h("fieldset", {}, h("legend", {}, spec.legend), p.items) : p.items)),
          h("button", { type: "submit" }, spec.submit),
        );
        const show = (f, message) => {
          f.error.textContent = message;
          f.error.hidden = false;
          f.input.setAttribute("aria-invalid", "true");
        };
        form.addEventListener("submit", async (event) => {
          event.preventDefault();
          let wrong = null;
          for (const f of fields.filter((f) => f.error)) {
            f.error.hidden = true;
            f.input.removeAttribute("aria-invalid");
            const problem = f.problem();
            if (problem) {
              show(f, problem);
              wrong = wrong || f;
            }
          }
          if (wrong) {
            wrong.input.focus();
            return;
          }
          const metadata = Object.fromEntries(fields.map((f) => [f.name, f.value()]));
          await submitJob({ job_type: spec.jobType, integrationId: id, metadata }, (error) => {
            const f = fields.find((x) => x.error && (error.field === `metadata.${x.name}` || (error.field || "").startsWith(`metadata.${x.name}[`)));
            if (!f) return false;
            show(f, error.message);
            f.input.focus();
            return true;
          });
        });
        out.push(form);
      }),
    );
  return out;
}

// Queue the job *body* asks for and open its page; an error *atField* does not show
// next to a field is said in the notice.
export async function submitJob(body, atField) {
  try {
    const job = await post("/api/sync/jobs", body);
    const jobId = job.id || job.jobId;
    say(`Queued job ${jobId}`);
    location.hash = `#/jobs/${jobId}`;
  } catch (error) {
    if (!atField(error)) failed(error);
  }
}
