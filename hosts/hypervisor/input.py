"""Typed guest input: Linux key codes for the guest's keyboard layout, and pointer events as QEMU's
input-send-event takes them.

No I/O here: the libvirt driver sends what these build. A guest reads key codes through its own layout, so text
becomes the chords that layout needs (hosts.hypervisor.layouts, generated from xkb-data): Shift or AltGr held where
it needs them, a dead key followed by space for `^` on a German keyboard (a VNC-typed `>` arrives without Shift, so
every chord is explicit here).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hosts.hypervisor.layouts import LAYOUTS

__all__ = [
    "ABS_MAX",
    "DEFAULT_LAYOUT",
    "KEY_NAMES",
    "MAX_CHORD_KEYS",
    "PointerButton",
    "PointerEvent",
    "UnknownKey",
    "UnsupportedCharacter",
    "chord_codes",
    "text_chords",
]

# QEMU's absolute axis range (INPUT_EVENT_ABS_MIN..MAX); the USB tablet scales it to the screen.
ABS_MAX = 0x7FFF
# virDomainSendKey takes at most 16 key codes in one call (VIR_DOMAIN_SEND_KEY_MAX_KEYS).
MAX_CHORD_KEYS = 16

_LETTERS = {c: code for c, code in zip("qwertyuiop", range(16, 26), strict=True)}
_LETTERS |= {c: code for c, code in zip("asdfghjkl", range(30, 39), strict=True)}
_LETTERS |= {c: code for c, code in zip("zxcvbnm", range(44, 51), strict=True)}
_DIGITS = {c: code for c, code in zip("1234567890", range(2, 12), strict=True)}

# Named keys (lower case) -> Linux input key code (linux/input-event-codes.h).
KEY_NAMES: dict[str, int] = {
    **_LETTERS,
    **_DIGITS,
    "esc": 1, "escape": 1, "minus": 12, "equal": 13, "backspace": 14, "tab": 15,
    "leftbrace": 26, "rightbrace": 27, "enter": 28, "return": 28,
    "ctrl": 29, "control": 29, "leftctrl": 29, "rightctrl": 97,
    "semicolon": 39, "apostrophe": 40, "grave": 41,
    "shift": 42, "leftshift": 42, "rightshift": 54, "backslash": 43,
    "comma": 51, "dot": 52, "period": 52, "slash": 53,
    "alt": 56, "leftalt": 56, "rightalt": 100, "altgr": 100,
    "space": 57, "capslock": 58,
    **{f"f{n}": 58 + n for n in range(1, 11)}, "f11": 87, "f12": 88,
    "numlock": 69, "scrolllock": 70, "sysrq": 99, "printscreen": 99, "pause": 119,
    "home": 102, "up": 103, "pageup": 104, "left": 105, "right": 106, "end": 107, "down": 108,
    "pagedown": 109, "insert": 110, "delete": 111, "del": 111,
    "meta": 125, "super": 125, "win": 125, "leftmeta": 125, "rightmeta": 126, "menu": 127,
}  # fmt: skip

DEFAULT_LAYOUT = "us"
# What every layout types with the same key, whatever the tables say: the line and tab keys.
_CONTROL_CHARACTERS = {"\n": ((KEY_NAMES["enter"],),), "\t": ((KEY_NAMES["tab"],),)}


class UnsupportedCharacter(ValueError):
    """A character the guest's keyboard layout cannot type."""

    def __init__(self, char: str, layout: str = DEFAULT_LAYOUT) -> None:
        super().__init__(f"{char!r} cannot be typed on the {layout!r} keyboard layout.")
        self.char = char
        self.layout = layout


class UnknownKey(ValueError):
    """A key name outside KEY_NAMES."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown key {name!r}.")
        self.name = name


def text_chords(text: str, layout: str = DEFAULT_LAYOUT) -> list[tuple[int, ...]]:
    """The chords (key codes pressed together, then released) that type text on a guest with this layout."""
    table = LAYOUTS[layout]
    chords: list[tuple[int, ...]] = []
    for char in text.replace("\r\n", "\n"):
        typed = _CONTROL_CHARACTERS.get(char) or table.get(char)
        if typed is None:
            raise UnsupportedCharacter(char, layout)
        chords.extend(typed)
    return chords


def chord_codes(chord: str) -> tuple[int, ...]:
    """Key codes of a chord written as names joined by "+", e.g. "ctrl+alt+delete" (modifiers first)."""
    names = [part.strip().lower() for part in chord.split("+")]
    if not names or any(not n for n in names):
        raise UnknownKey(chord)
    codes = []
    for name in names:
        if name not in KEY_NAMES:
            raise UnknownKey(name)
        codes.append(KEY_NAMES[name])
    if len(codes) > MAX_CHORD_KEYS:
        raise UnknownKey(chord)
    return tuple(codes)


class PointerButton(enum.StrEnum):
    """QEMU's InputButton names that a pointer action may press."""

    LEFT = "left"
    MIDDLE = "middle"
    RIGHT = "right"
    WHEEL_UP = "wheel-up"
    WHEEL_DOWN = "wheel-down"


@dataclass(frozen=True)
class PointerEvent:
    """One synchronised pointer step: move to (x, y) in screen pixels and/or press or release one button."""

    x: int | None = None
    y: int | None = None
    button: PointerButton | None = None
    down: bool = True

    def qmp_events(self, width: int, height: int) -> list[dict]:
        """This step as input-send-event events for a screen of width x height pixels."""
        events: list[dict] = []
        if self.x is not None and self.y is not None:
            events.append({"type": "abs", "data": {"axis": "x", "value": _scale(self.x, width)}})
            events.append({"type": "abs", "data": {"axis": "y", "value": _scale(self.y, height)}})
        if self.button is not None:
            events.append({"type": "btn", "data": {"down": self.down, "button": self.button.value}})
        return events


def _scale(pixel: int, size: int) -> int:
    """A pixel coordinate on the absolute axis (the last pixel is ABS_MAX)."""
    if size <= 1:
        return 0
    return round(max(0, min(pixel, size - 1)) * ABS_MAX / (size - 1))
