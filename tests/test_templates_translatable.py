"""Every word a person reads on a page goes through {% translate %}: no template may add English that German misses.

The scan (tests/template_text.py) splits each template with Django's own lexer and follows the HTML, so it sees
page text and the attributes people read (title, aria-label, placeholder, alt, data-confirm, data-label), not
class names, ids, URLs, scripts or code.
"""

from __future__ import annotations

import pytest

from tests.template_text import ALLOWED_WORDS, project_templates, untranslated


def _found(source: str) -> list[tuple[str, str]]:
    return [(u.where, u.text) for u in untranslated(source)]


def test_it_finds_no_untranslated_text_in_any_template():
    templates = project_templates()
    names = {p.as_posix() for p in templates}
    # The walk reaches the project's templates and its apps' (guards the test from passing on an empty list)
    assert len(templates) > 50
    assert any(n.endswith("templates/desktops/console.html") for n in names)
    assert any(n.endswith("templates/tenants/audit.html") for n in names)
    found = [str(u) for path in templates for u in untranslated(path.read_text(encoding="utf-8"), str(path))]
    assert found == [], "Untranslated text (wrap it in {% translate %} / {% blocktranslate %}):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>Hello there</p>", [("text", "Hello there")]),
        ("{% block head_title %}Audit log{% endblock %}", [("text", "Audit log")]),
        ('<button title="Full screen">&#9974;</button>', [("title", "Full screen")]),
        ('<input aria-label="Person" placeholder="Someone">', [("aria-label", "Person"), ("placeholder", "Someone")]),
        ('<img alt="Logo of {{ name }}" src="x.png">', [("alt", "Logo of")]),
        ('<form data-confirm="Delete {{ d.name }}?">', [("data-confirm", "Delete ?")]),
        ('<input type="radio" data-shape="{{ n }} GiB disk">', [("data-shape", "GiB disk")]),
        ('<td>{{ e.actor.email|default:"system" }}</td>', [("filter", '"system"')]),
        # Text split by a variable or a tag is still found, each piece where it is
        ("<p>Up {{ since }} ago</p>", [("text", "Up ago")]),
        ("<p>{% if x %}Running{% else %}Stopped{% endif %}</p>", [("text", "Running"), ("text", "Stopped")]),
        # Translated in one place does not cover the next sentence
        ('<p>{% translate "Saved" %} Reload the page</p>', [("text", "Reload the page")]),
    ],
)
def test_it_reports_text_that_no_translate_tag_covers(source, expected):
    assert _found(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        '{% load i18n %}<h1>{% translate "Console sessions" %}</h1>',
        "<p>{% blocktranslate trimmed with name=d.name %}Stop {{ name }}? Work is lost.{% endblocktranslate %}</p>",
        "<p>{% blocktranslate count n=n %}{{ n }} desktop{% plural %}{{ n }} desktops{% endblocktranslate %}</p>",
        '<button title="{% translate "Full screen" %}" aria-label="{% trans "Full screen" %}">x</button>',
        '<td>{{ e.actor.email|default:_("system") }}</td><td>{{ e.at|date:"Y-m-d H:i" }}</td>',
        # Markup and data, not text: class names, ids, test ids, links, values, styles, scripts, code
        '<div class="page-head wide" id="qc-status" data-testid="audit-filters" data-cmd="scale"></div>',
        '<a href="/admin/hosts/host/">&rarr;</a> <option value="stop_idle">&middot;</option>',
        '<style>body { color: red }</style><script>const label = "Connecting";</script>',
        "<p><code>qemu:///system</code> <kbd>Enter</kbd></p>",
        "<!-- a note for developers --> {# and one for the template #}",
        "{% comment %}Why this block exists{% endcomment %}",
        "{% block main_class %}container auth-card{% endblock %}",
        # Allowed words: names and units that read the same in German
        "<span>Quetzal</span> <small>{{ n }} GiB · {{ c }} vCPU</small>",
    ],
)
def test_it_leaves_translated_text_markup_and_allowed_words_alone(source):
    assert _found(source) == []


def test_every_allowed_word_says_why():
    assert all(reason.strip() for reason in ALLOWED_WORDS.values())
    assert len(ALLOWED_WORDS) < 30  # a short list: anything else a person reads is translated
