"""Split a document's text at its structure: Markdown and RST headings, HTML h1-h6, code at
top-level functions and classes. Each Section keeps its heading path and its offset."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["Section", "clean_heading", "iter_lines", "markdown", "rst", "html", "code"]


@dataclass
class Section:
    """A run of text under one heading path (or one PDF page), with its offset in the file's text."""

    text: str
    start: int
    headings: tuple[str, ...] = ()
    page: int | None = None


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """(offset, line) pairs, line without its newline."""
    offset = 0
    for line in text.splitlines(keepends=True):
        yield offset, line.rstrip("\r\n")
        offset += len(line)


_ATX = re.compile(r"^(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")  # a closing run of # needs a space before it
_FENCE = re.compile(r"^\s*(```|~~~)")


# Permalink signs that generators append to headings (Sphinx's ¶, anchors' # and 🔗, §).
_PERMALINK = re.compile(r"(?:\s*[¶§\U0001F517]|\s+#)+\s*$")  # "C#" keeps its #


def clean_heading(title: str) -> str:
    """A heading as a reader sees it: one line, single spaces, no trailing permalink sign."""
    return _PERMALINK.sub("", " ".join(title.split()))


def _split(text: str, marks: list[tuple[int, int, str]]) -> list[Section]:
    """Sections from (offset, level, title) heading marks; text before the first is its own."""
    sections, path = [], []
    bounds = [(0, 0, "")] + marks if not marks or marks[0][0] > 0 else marks
    for index, (start, level, title) in enumerate(bounds):
        end = bounds[index + 1][0] if index + 1 < len(bounds) else len(text)
        title = clean_heading(title)
        if title:
            path = [h for h in path if h[0] < level] + [(level, title)]
        sections.append(Section(text[start:end], start, tuple(t for _, t in path)))
    return sections


def markdown(text: str) -> list[Section]:
    marks, fenced = [], False
    for offset, line in iter_lines(text):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _ATX.match(line)):
            marks.append((offset, len(match.group(1)), match.group(2)))
    return _split(text, marks)


_RST_RULE = re.compile(r"^([=\-~^\"'`#*+<>:.,_])\1{2,}\s*$")


def rst(text: str) -> list[Section]:
    """Headings are a line underlined (and maybe overlined) by punctuation; levels are given by
    the order in which the underline characters first appear, as docutils does."""
    lines = list(iter_lines(text))
    order: list[str] = []
    marks = []
    for i in range(1, len(lines)):
        offset, line = lines[i]
        title_offset, title = lines[i - 1]
        match = _RST_RULE.match(line)
        if (
            match
            and title.strip()
            and not _RST_RULE.match(title)
            and len(line.rstrip()) >= len(title.rstrip())
        ):
            char = match.group(1)
            if char not in order:
                order.append(char)
            overline = i >= 2 and lines[i - 2][1].strip() == line.strip()
            marks.append(
                (lines[i - 2][0] if overline else title_offset, order.index(char) + 1, title.strip())
            )
    return _split(text, marks)


class _HTMLText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "pre", "table", "ul", "ol", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.skipping = 0
        self.open_skips: list[str] = []  # a permalink <a> is skipped like <script>
        self.heading: tuple[int, int] | None = None  # (level, offset of its text)
        self.marks: list[tuple[int, int, str]] = []

    def _add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self.SKIP or (tag == "a" and "headerlink" in (dict(attrs).get("class") or "").split()):
            self.skipping += 1
            self.open_skips.append(tag)
        elif re.fullmatch(r"h[1-6]", tag):
            self._add("\n")
            self.heading = (int(tag[1]), self.size)
        elif tag in self.BLOCK:
            self._add("\n")

    def handle_endtag(self, tag) -> None:
        if self.open_skips and tag == self.open_skips[-1]:
            self.open_skips.pop()
            self.skipping = max(0, self.skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self.heading:
            level, start = self.heading
            title = " ".join("".join(self.parts)[start:].split())
            if title:
                self.marks.append((start, level, title))
            self.heading = None
            self._add("\n")

    def handle_data(self, data) -> None:
        if not self.skipping:
            self._add(data)


def html(text: str) -> list[Section]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    plain = "".join(parser.parts)
    return _split(plain, parser.marks)


_PY_DEF = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)")
_BRACE_DEF = re.compile(
    r"^(?:export\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:public\s+|private\s+|protected\s+|static\s+|async\s+|"
    r"abstract\s+|final\s+)*(?:func|fn|function|class|struct|interface|impl|enum|trait|def|type)\s+"
    r"(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"
)
_C_FUNC = re.compile(r"^[A-Za-z_][\w\s\*:<>,]*?\b([A-Za-z_]\w*)\s*\([^;]*$")


def code(text: str, suffix: str) -> list[Section]:
    """Top-level definitions start sections (decorators and comments just above stay with them)."""
    marks = []
    lines = list(iter_lines(text))
    for i, (offset, line) in enumerate(lines):
        if not line or line[0].isspace():
            continue
        match = (
            _PY_DEF.match(line)
            if suffix == ".py"
            else (
                _BRACE_DEF.match(line)
                or (_C_FUNC.match(line) if suffix in {".c", ".h", ".cc", ".cpp", ".hpp"} else None)
            )
        )
        if not match:
            continue
        start = offset
        j = i - 1
        while (
            j >= 0
            and lines[j][1].strip().startswith(("@", "#", "//", "/*", "*", "///"))
            and (suffix != ".py" or not lines[j][1].startswith("#!"))
        ):
            start = lines[j][0]
            j -= 1
        marks.append((start, 1, match.group(1)))
    return _split(text, marks)
