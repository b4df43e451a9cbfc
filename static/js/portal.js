// The launcher and "my desktops": call the API, follow the operation, open the console when ready.
const csrf = () => document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: body ? JSON.stringify(body) : undefined,
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || `Request failed (${response.status})`);
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll an operation until it ends, reporting each step; resolves with the finished operation.
export async function follow(operation, onStep) {
  let current = operation;
  while (current && !["succeeded", "failed"].includes(current.status)) {
    onStep?.(current.step || current.status);
    await sleep(400);
    current = await api("GET", current.url);
  }
  return current;
}

async function launch(button) {
  const card = button.closest(".template-card");
  const bar = card.querySelector(".launch-progress");
  const label = card.querySelector(".launch-step");
  button.disabled = true;
  bar.hidden = false;
  label.textContent = "requesting";
  try {
    const result = await api("POST", "/api/desktop/start", { template: Number(button.dataset.template) });
    const done = await follow(result.operation, (step) => (label.textContent = step));
    if (done && done.status === "failed") throw new Error(done.error || "The launch failed");
    label.textContent = "ready";
    window.location.href = `/desktops/${result.desktop.id}/console/`;
  } catch (error) {
    label.textContent = error.message;
    button.disabled = false;
    bar.hidden = true;
  }
}

async function act(button) {
  const row = button.closest("tr[data-desktop]");
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  const id = row.dataset.desktop;
  const action = button.dataset.action;
  row.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    const body = button.dataset.snapshot ? { snapshot: button.dataset.snapshot } : {};
    const result =
      action === "delete"
        ? await api("DELETE", `/api/v1/desktops/${id}/`)
        : await api("POST", `/api/v1/desktops/${id}/${action}/`, body);
    await follow(result.operation, (step) => (row.querySelector(".badge").textContent = step));
  } catch (error) {
    window.alert(error.message);
  }
  window.location.reload();
}

document.addEventListener("click", (event) => {
  const launchButton = event.target.closest("button.launch");
  if (launchButton) return launch(launchButton);
  const actionButton = event.target.closest("button[data-action]");
  if (actionButton) return act(actionButton);
});
