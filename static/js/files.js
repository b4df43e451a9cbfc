// The file manager: browse the home folder, upload (several files, drag and drop, chunked and resumable,
// with progress), download (folders as zip), make folders, rename or move, delete.
import "./i18n.js"; // gettext() even where no catalogue loaded
import { api, confirmAction } from "./ui.js";

const root = document.querySelector("[data-files]");
const base = root.dataset.api; // /api/v1/files/
const csrf = () => document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
const $ = (sel) => root.querySelector(sel);
let here = "";

const ICONS = {
  dir: '<path d="M22 19a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h5l2 3h9a2 2 0 0 1 2 2z"/>',
  file: '<path d="M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z"/><polyline points="14 2 14 8 20 8"/>',
};
function icon(kind) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("aria-hidden", "true");
  svg.innerHTML = ICONS[kind === "dir" ? "dir" : "file"]; // constant markup, never a file name
  return svg;
}

const join = (folder, name) => (folder ? `${folder}/${name}` : name);
const q = (params) => new URLSearchParams(params).toString();

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function showError(error) {
  const box = $("[data-error]");
  box.textContent = error ? error.message || String(error) : "";
  box.hidden = !error;
}

function crumbs() {
  const nav = $("[data-crumbs]");
  nav.replaceChildren();
  const parts = here ? here.split("/") : [];
  const link = (label, path) => {
    const a = document.createElement("a");
    a.href = "#";
    a.textContent = label;
    a.addEventListener("click", (event) => {
      event.preventDefault();
      open(path);
    });
    return a;
  };
  nav.append(link(gettext("Home"), ""));
  parts.forEach((part, i) => {
    nav.append(" / ");
    nav.append(link(part, parts.slice(0, i + 1).join("/")));
  });
}

function row(entry) {
  const tr = document.createElement("tr");
  const path = join(here, entry.name);
  tr.dataset.entry = entry.name;
  const name = document.createElement("td");
  const label = document.createElement(entry.kind === "dir" ? "a" : "span");
  label.className = "entry";
  const text = document.createElement("span");
  text.textContent = entry.name;
  label.append(icon(entry.kind), text);
  if (entry.kind === "dir") {
    label.href = "#";
    label.addEventListener("click", (event) => {
      event.preventDefault();
      open(path);
    });
  }
  name.append(label);
  const bytes = document.createElement("td");
  bytes.className = "num hide-phone";
  bytes.textContent = entry.kind === "file" ? size(entry.size) : "";
  const when = document.createElement("td");
  when.className = "hide-phone muted small";
  when.textContent = entry.mtime ? new Date(entry.mtime * 1000).toLocaleString() : "";
  const actions = document.createElement("td");
  actions.className = "row-actions";
  const download = document.createElement("a");
  download.role = "button";
  download.className = "secondary outline";
  download.href = `${base}download/?${q({ path })}`;
  download.textContent = entry.kind === "dir" ? gettext("Zip") : gettext("Download");
  download.dataset.testid = `download-${entry.name}`;
  const rename = document.createElement("button");
  rename.type = "button";
  rename.className = "secondary outline";
  rename.textContent = gettext("Rename");
  rename.addEventListener("click", () => renameEntry(entry));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary outline danger-text";
  remove.textContent = gettext("Delete");
  remove.dataset.testid = `delete-${entry.name}`;
  remove.addEventListener("click", () => deleteEntry(entry));
  if (entry.kind === "file" || entry.kind === "dir") actions.append(download);
  actions.append(rename, remove);
  tr.append(name, bytes, when, actions);
  return tr;
}

async function open(path) {
  showError(null);
  try {
    const listing = await api("GET", `${base}?${q({ path })}`);
    here = listing.path;
    crumbs();
    const body = $("[data-entries]");
    body.replaceChildren(...listing.entries.map(row));
    $("[data-empty]").hidden = listing.entries.length > 0;
    // The host side reads no modification times; hide the column rather than show it empty.
    root.classList.toggle("no-mtime", !listing.entries.some((e) => e.mtime));
    $("[data-usage]").textContent = interpolate(
      gettext("%(used)s of %(total)s used"),
      { used: size(listing.used), total: size(listing.total) },
      true,
    );
    $("[data-usage-bar]").max = listing.total || 1;
    $("[data-usage-bar]").value = listing.used;
  } catch (error) {
    showError(error);
  }
}

async function renameEntry(entry) {
  const name = window.prompt(
    interpolate(gettext("New name (or path, to move it) for %(name)s:"), { name: entry.name }, true),
    entry.name,
  );
  if (!name || name === entry.name) return;
  try {
    const dest = name.includes("/") ? name.replace(/^\/+/, "") : join(here, name);
    await api("POST", `${base}move/`, { source: join(here, entry.name), dest });
    await open(here);
  } catch (error) {
    showError(error);
  }
}

async function deleteEntry(entry) {
  const question =
    entry.kind === "dir"
      ? gettext("Delete the folder %(name)s and everything in it? This cannot be undone.")
      : gettext("Delete %(name)s? This cannot be undone.");
  if (!(await confirmAction(interpolate(question, { name: entry.name }, true), gettext("Delete")))) return;
  try {
    await api("POST", `${base}delete/`, { path: join(here, entry.name) });
    await open(here);
  } catch (error) {
    showError(error);
  }
}

// --- uploads: 4 MiB chunks, each PUT at the offset the server has; a broken link resumes from there.

const CHUNK = 4 * 1024 * 1024;

function putChunk(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("X-CSRFToken", csrf());
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      let data = {};
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(Object.assign(new Error(data.detail || interpolate(gettext("Upload failed (%s)"), [xhr.status])), { status: xhr.status }));
    };
    xhr.onerror = () => reject(Object.assign(new Error(gettext("Network error")), { status: 0 }));
    xhr.send(blob);
  });
}

async function uploadFile(file, folder) {
  const item = document.createElement("li");
  item.dataset.transfer = file.name;
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = file.name;
  const state = document.createElement("span");
  state.className = "muted";
  const bar = document.createElement("progress");
  bar.max = file.size || 1;
  bar.value = 0;
  item.append(label, state, bar);
  $("[data-transfers]").append(item);
  try {
    let upload = await api("POST", `${base}uploads/`, { path: join(folder, file.name), size: file.size });
    const url = `${base}uploads/${upload.id}/`;
    let failures = 0;
    while (upload.received < file.size) {
      const start = upload.received;
      const piece = file.slice(start, Math.min(start + CHUNK, file.size));
      try {
        upload = await putChunk(`${url}?offset=${start}`, piece, (loaded) => {
          bar.value = start + loaded;
          state.textContent = `${Math.floor(((start + loaded) / (file.size || 1)) * 100)} %`;
        });
        failures = 0;
      } catch (error) {
        failures += 1;
        if (error.status && error.status !== 409 && error.status < 500) throw error;
        if (failures > 5) throw error;
        await new Promise((r) => setTimeout(r, 500 * failures));
        upload = await api("GET", url); // resume from what arrived
      }
    }
    state.textContent = gettext("saving…");
    await api("POST", `${url}finish/`);
    bar.value = bar.max;
    state.textContent = gettext("done");
    item.dataset.done = "1";
  } catch (error) {
    state.textContent = gettext("failed");
    item.dataset.failed = "1";
    showError(error);
  }
}

async function uploadAll(fileList) {
  const folder = here;
  for (const file of Array.from(fileList)) await uploadFile(file, folder);
  await open(here);
}

$("[data-file-input]").addEventListener("change", (event) => {
  uploadAll(event.target.files);
  event.target.value = "";
});

const zone = $("[data-drop]");
zone.addEventListener("dragover", (event) => {
  event.preventDefault();
  zone.classList.add("dragging");
});
zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("dragging");
  if (event.dataTransfer?.files?.length) uploadAll(event.dataTransfer.files);
});

$("[data-new-folder]").addEventListener("click", async () => {
  const name = window.prompt(gettext("Name of the new folder:"));
  if (!name) return;
  try {
    await api("POST", `${base}folders/`, { path: join(here, name) });
    await open(here);
  } catch (error) {
    showError(error);
  }
});

open("");
