// Idle countdowns that stay right while the page stays open: every [data-countdown] is rewritten each
// 15 s ("in 12 min", "in under a minute", "any moment now" once due: never "in 0 min"), and a card's
// "Still working?" warning appears at its data-warn-at moment without a reload.
import "./i18n.js"; // gettext() even where no catalogue loaded
function text(deadline) {
  const seconds = (deadline - Date.now()) / 1000;
  if (seconds <= 0) return gettext("any moment now");
  if (seconds < 60) return gettext("in under a minute");
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return interpolate(gettext("in %s min"), [minutes]);
  const hours = Math.floor(minutes / 60);
  return minutes % 60
    ? interpolate(gettext("in %(hours)s h %(minutes)s min"), { hours, minutes: minutes % 60 }, true)
    : interpolate(gettext("in %s h"), [hours]);
}

export function tick(root = document) {
  for (const span of root.querySelectorAll("[data-countdown]")) {
    const deadline = Date.parse(span.dataset.countdown);
    if (!Number.isNaN(deadline)) span.textContent = text(deadline);
  }
  for (const warning of root.querySelectorAll("[data-idle-warning][hidden]")) {
    const at = Date.parse(warning.dataset.warnAt);
    if (Number.isNaN(at) || at > Date.now()) continue;
    warning.hidden = false;
    const note = warning.parentElement?.querySelector("[data-idle-note]");
    if (note) note.hidden = true;
  }
}

tick();
setInterval(tick, 15000);
