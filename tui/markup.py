"""Text put into Textual markup (a Static's content) as it is.

Rich's `escape` is not enough for Textual's parser: a `[` followed by a quote (`["Cities",` in a
model's JSON answer) opens what it reads as a tag and swallows the markup after it ("closing tag
'[/dim]' does not match any open tag"). Every `[` is escaped here; a trailing backslash, which
would escape the tag that follows, gets a space after it. (RichLog writes go through Rich's own
parser: they keep `rich.markup.escape`.)
"""

from __future__ import annotations

__all__ = ["escape"]


def escape(text: str) -> str:
    text = text.replace("[", "\\[")
    return text + " " if text.endswith("\\") else text
