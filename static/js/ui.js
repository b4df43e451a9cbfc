// Shared by the portal and the tenant admin (manage) pages: API calls, following operations, confirmation dialogs.
import "./i18n.js"; // gettext() even where no catalogue loaded
const csrf = () => document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";

export async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
    body: body ? JSON.stringify(body) : undefined,
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || interpolate(gettext("Request failed (%s)"), [response.status]));
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll an operation until it ends, reporting it at every change; resolves with the finished operation.
export async function follow(operation, onChange) {
  let current = operation;
  let seen = "";
  while (current) {
    const signature = `${current.status}:${(current.steps || []).length}`;
    if (signature !== seen) {
      seen = signature;
      onChange?.(current);
    }
    if (["succeeded", "failed"].includes(current.status)) return current;
    await sleep(400);
    current = await api("GET", current.url);
  }
  return current;
}

// A modal question; resolves true when the person confirms (falls back to window.confirm).
export function confirmAction(text, okLabel = gettext("Continue")) {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog) return Promise.resolve(window.confirm(text));
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.querySelector("[value=ok]").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.close();
      dialog.removeEventListener("click", onClick);
      dialog.removeEventListener("cancel", onCancel);
      resolve(answer);
    };
    const onClick = (event) => {
      const button = event.target.closest("button");
      if (button) done(button.value === "ok");
      else if (event.target === dialog) done(false); // a click on the backdrop
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(false);
    };
    dialog.addEventListener("click", onClick);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
  });
}

// Forms marked data-confirm ask first (bulk actions, deletions).
export function confirmForms(root = document) {
  root.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (!form || form.dataset.confirmed === "yes") return;
    event.preventDefault();
    const button = event.submitter || form.querySelector("[type=submit]");
    if (await confirmAction(form.dataset.confirm, button?.textContent.trim() || gettext("Continue"))) {
      form.dataset.confirmed = "yes";
      form.submit(); // no submit event this time; the action is carried by hidden inputs

    }
  });
}
