"""The keyboard layouts' source of truth: libxkbcommon reading Debian's xkb-data, through ctypes.

hosts/hypervisor/layouts.py is generated from it (`.venv/bin/python -m tests.xkb > hosts/hypervisor/layouts.py`),
and desktops/tests/test_keyboard_layouts.py regenerates it and compares, so the typed input the automation API sends
is what a guest with that layout really reads. Only tests and that command load libxkbcommon; the platform does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import unicodedata

LAYOUTS = ("us", "gb", "de", "fr", "es", "it", "ch")
# Linux key codes (linux/input-event-codes.h) of the typing keys: the number row, the three letter rows, the key
# between left Shift and Z on ISO keyboards (KEY_102ND), and space. xkb's key codes are these plus 8.
KEYS = (*range(2, 14), *range(16, 28), *range(30, 42), *range(43, 54), 86, 57)
SHIFT, ALTGR, SPACE = 42, 100, 57
# The levels a key is read at, by the modifiers held: fewer modifiers win when two chords type one character.
LEVELS: tuple[tuple[int, ...], ...] = ((), (SHIFT,), (ALTGR,), (SHIFT, ALTGR))
XKB_KEY_DOWN = 1
XKB_COMPOSE_COMPOSED = 2
COMPOSE_LOCALE = b"en_US.UTF-8"


class _RuleNames(ctypes.Structure):
    _fields_ = [(name, ctypes.c_char_p) for name in ("rules", "model", "layout", "variant", "options")]


def _library() -> ctypes.CDLL:
    path = ctypes.util.find_library("xkbcommon")
    if path is None:
        raise OSError("libxkbcommon is not installed (apt-get install libxkbcommon0 xkb-data)")
    lib = ctypes.CDLL(path)
    pointer = ctypes.c_void_p
    signatures = {
        "xkb_context_new": ([ctypes.c_int], pointer),
        "xkb_keymap_new_from_names": ([pointer, ctypes.POINTER(_RuleNames), ctypes.c_int], pointer),
        "xkb_state_new": ([pointer], pointer),
        "xkb_state_unref": ([pointer], None),
        "xkb_state_update_key": ([pointer, ctypes.c_uint32, ctypes.c_int], ctypes.c_int),
        "xkb_state_key_get_one_sym": ([pointer, ctypes.c_uint32], ctypes.c_uint32),
        "xkb_state_key_get_utf8": ([pointer, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int),
        "xkb_keysym_get_name": ([ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int),
        "xkb_compose_table_new_from_locale": ([pointer, ctypes.c_char_p, ctypes.c_int], pointer),
        "xkb_compose_state_new": ([pointer, ctypes.c_int], pointer),
        "xkb_compose_state_unref": ([pointer], None),
        "xkb_compose_state_reset": ([pointer], None),
        "xkb_compose_state_feed": ([pointer, ctypes.c_uint32], ctypes.c_int),
        "xkb_compose_state_get_status": ([pointer], ctypes.c_int),
        "xkb_compose_state_get_utf8": ([pointer, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


class Xkb:
    """One xkb context with the system's compose table: what a guest's X or Wayland session makes of key codes."""

    def __init__(self) -> None:
        self.lib = _library()
        self.context = self.lib.xkb_context_new(0)
        self.compose = self.lib.xkb_compose_table_new_from_locale(self.context, COMPOSE_LOCALE, 0)
        if not self.context or not self.compose:
            raise OSError("libxkbcommon found no keymaps or compose table (apt-get install xkb-data libx11-data)")
        self._keymaps: dict[str, int] = {}

    def keymap(self, layout: str) -> int:
        if layout not in self._keymaps:
            names = _RuleNames(b"evdev", b"pc105", layout.encode(), b"", b"")
            keymap = self.lib.xkb_keymap_new_from_names(self.context, ctypes.byref(names), 0)
            if not keymap:
                raise OSError(f"xkb-data has no layout {layout!r}")
            self._keymaps[layout] = keymap
        return self._keymaps[layout]

    def typed(self, layout: str, chords: tuple[tuple[int, ...], ...]) -> str:
        """What the chords type in a fresh session with this layout (dead keys composed as a session does)."""
        compose = self.lib.xkb_compose_state_new(self.compose, 0)
        out = []
        try:
            for chord in chords:
                *modifiers, key = chord
                symbol, text = self._press(layout, tuple(modifiers), key)
                if self.lib.xkb_compose_state_feed(compose, symbol) == 1:  # XKB_COMPOSE_FEED_ACCEPTED
                    status = self.lib.xkb_compose_state_get_status(compose)
                    if status == XKB_COMPOSE_COMPOSED:
                        buffer = ctypes.create_string_buffer(16)
                        self.lib.xkb_compose_state_get_utf8(compose, buffer, 16)
                        out.append(buffer.value.decode())
                        self.lib.xkb_compose_state_reset(compose)
                        continue
                    if status != 0:  # composing (a dead key waits) or cancelled: nothing typed yet
                        continue
                out.append(text)
        finally:
            self.lib.xkb_compose_state_unref(compose)
        return "".join(out)

    def symbol_name(self, symbol: int) -> str:
        buffer = ctypes.create_string_buffer(64)
        self.lib.xkb_keysym_get_name(symbol, buffer, 64)
        return buffer.value.decode()

    def _press(self, layout: str, modifiers: tuple[int, ...], key: int) -> tuple[int, str]:
        state = self.lib.xkb_state_new(self.keymap(layout))
        try:
            for modifier in modifiers:
                self.lib.xkb_state_update_key(state, modifier + 8, XKB_KEY_DOWN)
            symbol = self.lib.xkb_state_key_get_one_sym(state, key + 8)
            buffer = ctypes.create_string_buffer(16)
            self.lib.xkb_state_key_get_utf8(state, key + 8, buffer, 16)
            return symbol, buffer.value.decode()
        finally:
            self.lib.xkb_state_unref(state)


def _printable(text: str) -> bool:
    return len(text) == 1 and (text == " " or unicodedata.category(text)[0] in "LNPS")


def layout_table(xkb: Xkb, layout: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Every character the layout types, with the fewest chords and modifiers: one chord, or a dead key followed
    by space (`^` alone) or by a letter (`é` as the acute dead key, then e)."""
    direct: dict[str, tuple[tuple[int, ...], ...]] = {}
    dead_keys: list[tuple[int, ...]] = []
    for modifiers in LEVELS:
        for key in KEYS:
            symbol, text = xkb._press(layout, modifiers, key)
            if xkb.symbol_name(symbol).startswith("dead_"):
                dead_keys.append((*modifiers, key))
            elif _printable(text):
                direct.setdefault(text, ((*modifiers, key),))
    composed: dict[str, tuple[tuple[int, ...], ...]] = {}
    followers = [(SPACE,)] + [chords[0] for char, chords in sorted(direct.items()) if char.isalpha()]
    for dead in dead_keys:
        for follower in followers:
            text = xkb.typed(layout, (dead, follower))
            if _printable(text) and text not in direct:
                composed.setdefault(text, (dead, follower))
    return {**composed, **direct}


def render() -> str:
    xkb = Xkb()
    lines = [
        '"""Characters per keyboard layout as Linux key-code chords, generated from libxkbcommon and xkb-data.',
        "",
        "Do not edit: `.venv/bin/python -m tests.xkb > hosts/hypervisor/layouts.py` writes it, and",
        "desktops/tests/test_keyboard_layouts.py checks it still matches. A character maps to the chords that type it:",
        "one (modifiers first, the key last), or a dead key followed by space or a letter.",
        '"""',
        "",
        "# ruff: noqa: RUF001  (the layouts type look-alike characters: that is what they are for)",
        "# fmt: off",
        "LAYOUTS: dict[str, dict[str, tuple[tuple[int, ...], ...]]] = {",
    ]
    for layout in LAYOUTS:
        lines.append(f"    {layout!r}: {{")
        for char, chords in sorted(layout_table(xkb, layout).items()):
            lines.append(f"        {char!r}: {chords!r},")
        lines.append("    },")
    lines += ["}", "# fmt: on", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
