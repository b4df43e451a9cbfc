// The one noVNC module the console and replay pages load, bundled and minified by `make vendor`.
export { default as RFB } from "../node_modules/@novnc/novnc/core/rfb.js";
export { default as KeyTable } from "../node_modules/@novnc/novnc/core/input/keysym.js";
export { default as keysyms } from "../node_modules/@novnc/novnc/core/input/keysymdef.js";
export { getKeycode, getKeysym } from "../node_modules/@novnc/novnc/core/input/util.js";
