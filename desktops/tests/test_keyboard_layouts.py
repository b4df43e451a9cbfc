"""Typed text per keyboard layout, checked against libxkbcommon reading Debian's xkb-data: what a guest's session
with that layout makes of the key codes we send."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from desktops.choices import KeyboardLayout
from hosts.hypervisor.input import UnsupportedCharacter, text_chords
from hosts.hypervisor.layouts import LAYOUTS
from tests.services import require

# What people type into desktops in each language: letters of the layout, shell punctuation and dead-key accents.
SAMPLES = {
    "us": "ls -la ~/src | grep '^[a-z]+' > \"out.txt\" && echo $HOME; {x}\\ @#%*`",
    "gb": '£5 for Zoë\'s café: ~/notes | grep "ë" @home #1',
    "de": "Grüße aus Köln: Straße, größer ä|ö|ü ~/é@€ {a}[b]\\c ^2 `cmd` y/z",
    "fr": "Où est le café ? À côté de la gare : ça coûte 5 € ! {x}[y]@#~ ê",
    "es": "¿Dónde está el niño? ¡Aquí! Peña, año 2026 - @#~ ü ç",
    "it": "Perché è così? Città, più, però: @#€ [x]{y} ò à ù",
    "ch": "Grüezi, wie gaht's? Zürich, Bärn, Genève: @#€ [x]{y}|\\ ~ é à è",
}


@pytest.fixture(scope="module")
def xkb():
    require(ctypes.util.find_library("xkbcommon") is not None, "libxkbcommon (apt-get install libxkbcommon0 xkb-data)")
    from tests.xkb import Xkb

    return Xkb()


def test_the_tables_are_what_xkb_data_says(xkb):
    from tests.xkb import render

    # The committed tables are exactly what the generator writes from this machine's xkb-data
    assert Path("hosts/hypervisor/layouts.py").read_text() == render()


@pytest.mark.parametrize("layout", sorted(SAMPLES))
def test_text_typed_for_a_layout_reads_back_as_that_text_in_a_session_with_it(xkb, layout):
    text = SAMPLES[layout]
    # When the sample is turned into chords for the layout
    chords = text_chords(text, layout)
    # Then a session with that layout types exactly the sample from them (dead keys composed)
    assert xkb.typed(layout, tuple(chords)) == text


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_character_of_every_layout_types_itself(xkb, layout):
    wrong = {char: xkb.typed(layout, chords) for char, chords in LAYOUTS[layout].items()}
    assert {char: typed for char, typed in wrong.items() if typed != char} == {}


def test_the_same_keys_type_different_letters_on_different_layouts():
    # The key right of T is Y on a US keyboard and Z on a German one; the US chords typed on a German guest
    # would say "yes" as "zes"
    assert text_chords("y", "us") == text_chords("z", "de") == [(21,)]
    assert text_chords("@", "us") == [(42, 3)] and text_chords("@", "de") == [(100, 16)]


def test_it_refuses_a_character_the_layout_cannot_type_naming_the_layout():
    with pytest.raises(UnsupportedCharacter, match="'é' cannot be typed on the 'us' keyboard layout"):
        text_chords("café", "us")
    assert len(text_chords("café", "de")) == 5  # c a f, then the acute dead key and e


def test_a_template_can_choose_every_layout_there_is_a_table_for_and_no_other():
    assert set(KeyboardLayout.values) == set(LAYOUTS)
