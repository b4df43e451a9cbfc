"""What the browser tour checks on every page: axe-core's serious and critical rules (text contrast below WCAG AA
among them), menus that open readable and on screen, and no sideways scrolling.

axe-core comes from the npm registry (package.json devDependencies, copied to static/vendor by `make vendor`); the
tour injects it into each page, no page loads it itself.
"""

from __future__ import annotations

from pathlib import Path

from tests.processes import ROOT

AXE = ROOT / "static" / "vendor" / "axe.min.js"
# Impacts that fail the tour; "minor" and "moderate" findings are reported by axe but do not fail it.
FAILING = ("serious", "critical")

_RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map((n) => {
      const why = (n.failureSummary || '').split('\\n').slice(1, 2).join('');
      return `${n.target.join(' ')} :: ${why}`;
    }),
  }));
}"""

# Every dropdown on the page, opened one at a time: each item must be inside the viewport and readable.
_OPEN_MENUS = """async () => {
  const found = [];
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const parse = (color) => (color.match(/[\\d.]+/g) || []).map(Number);
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const menu of document.querySelectorAll('details.dropdown')) {
    const summary = menu.querySelector('summary');
    if (!summary || summary.offsetParent === null) continue;
    menu.open = true;
    await new Promise((resolve) => setTimeout(resolve, 30));  // the toggle event places the menu
    const items = ':scope > ul li > a, :scope > ul li > button, :scope > ul li > form > button';
    for (const item of menu.querySelectorAll(items)) {
      const box = item.getBoundingClientRect();
      const label = `${summary.textContent.trim()} > ${item.textContent.trim()}`;
      if (box.left < -1 || box.right > window.innerWidth + 1) {
        found.push(`${label}: off screen (${Math.round(box.left)}..${Math.round(box.right)} of ${window.innerWidth})`);
      }
      const fg = luminance(parse(getComputedStyle(item).color).slice(0, 3));
      const bg = luminance(background(item));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      if (ratio < 4.5) found.push(`${label}: contrast ${ratio.toFixed(2)}`);
    }
    menu.open = false;
  }
  return found;
}"""


def axe_violations(page) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=Path(AXE).read_text())
    found = page.evaluate(_RUN_AXE)
    failing = [v for v in found if v["impact"] in FAILING]
    return [f"{v['id']} ({v['impact']}): {v['help']} — {'; '.join(v['nodes'])}" for v in failing]


def menu_problems(page) -> list[str]:
    """Dropdown items that open off screen or below WCAG AA text contrast."""
    return page.evaluate(_OPEN_MENUS)


def no_sideways_scroll(page) -> bool:
    """Whether the page fits the width the browser was given.

    Measured against the viewport the test asked for, not `innerWidth`: a mobile browser widens its layout
    viewport to fit content that overflows (and zooms out), so the page's own width would always "fit".
    """
    width = page.viewport_size["width"]
    return page.evaluate("(width) => document.documentElement.scrollWidth <= width + 1", width)


_LOOSE_TABLES = """(width) => {
  const loose = [];
  for (const table of document.querySelectorAll('table')) {
    if (table.offsetParent === null || table.getBoundingClientRect().width <= width + 1) continue;
    let box = table.parentElement;
    while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
    if (!box || box.clientWidth > width + 1) loose.push(table.id || table.className || 'table');
  }
  return loose;
}"""


def loose_wide_tables(page) -> list[str]:
    """Tables wider than the viewport that are not inside a box of their own that scrolls sideways."""
    return page.evaluate(_LOOSE_TABLES, page.viewport_size["width"])
