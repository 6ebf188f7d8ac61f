"""Text in the app's markup shows as it is: a model's answer such as `{"city": ["Cities",` broke
the Evals screen's case view (Textual read `["` as the start of a tag), and a trailing backslash
would escape the tag after it."""

from __future__ import annotations

import pytest
from textual.content import Content

from tui.markup import escape

TEXTS = [
    '{"city": ["Cities",',
    '[ "x"',
    'x ["a", "b"] y',
    "The [1] cite",
    "[b]bold[/b]",
    "[$x]",
    "a\\[b]",
    "ends \\",
]


@pytest.mark.parametrize("text", TEXTS)
def test_escaped_text_renders_as_itself_between_tags(text):
    shown = Content.from_markup(f"[b]{escape(text)}[/b]\n[dim]after[/dim]").plain
    assert shown.rstrip(" \n").startswith(text) and shown.endswith("\nafter")
