// Fallbacks for the translation catalogue (/jsi18n/): where it is not loaded (the Django admin's pages) or failed
// to, the scripts show their English text. The layout loads this after the catalogue; each module imports it too.
(() => {
  window.gettext ||= (text) => text;
  window.ngettext ||= (singular, plural, count) => (count === 1 ? singular : plural);
  window.interpolate ||= (format, values, named) =>
    named
      ? format.replace(/%\(\w+\)s/g, (match) => String(values[match.slice(2, -2)]))
      : ((rest) => format.replace(/%s/g, () => String(rest.shift())))([...values]);
})();
