"""How a trace reads on screen: its spans on a time axis (a waterfall), and one span's
attributes and payloads as text a person reads (messages as turns, passages as passages,
numbers rounded), not JSON with escapes."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.text import Text

STATUS_STYLES = {"error": "red", "cancelled": "yellow"}
KIND_STYLES = {"llm": "magenta", "retrieval": "cyan", "tool": "green", "embedding": "blue"}


def tree_order(spans: list[dict]) -> list[tuple[int, dict]]:
    """(depth, span) parents before children, siblings by start time; orphans at the top level."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict]] = {}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[int, dict]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s["start_ns"], s["span_id"])):
            ordered.append((depth, span))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return ordered


def waterfall(spans: list[dict], width: int = 40, name_width: int = 26) -> Text:
    """Each span as a bar on the trace's time axis: where the time went, at a glance."""
    start = min(s["start_ns"] for s in spans)
    total = max(max(s["end_ns"] for s in spans) - start, 1)
    text = Text()
    text.append(f"{'':{name_width}} {'0 ms':<{width}} {total / 1e6:>8,.1f} ms\n", style="dim")
    for depth, span in tree_order(spans):
        name = ("  " * depth + span["name"])[:name_width]
        first = int((span["start_ns"] - start) / total * width)
        length = max(1, round((span["end_ns"] - span["start_ns"]) / total * width))
        first = min(first, width - 1)
        length = min(length, width - first)
        style = STATUS_STYLES.get(span["status"]) or KIND_STYLES.get(span["kind"], "white")
        text.append(f"{name:{name_width}} ")
        text.append(" " * first)
        text.append("█" * length, style=style)
        text.append(" " * (width - first - length))
        text.append(f" {(span['end_ns'] - span['start_ns']) / 1e6:>8,.1f} ms\n")
    return text


def span_detail(span: dict) -> Group:
    head = Text.assemble((span["name"], "bold"), f"  {span['kind']}  ")
    head.append(span["status"], style=STATUS_STYLES.get(span["status"], "green"))
    head.append(f"  {(span['end_ns'] - span['start_ns']) / 1e6:,.1f} ms")
    parts: list[Any] = [head]
    if span["error"]:
        parts.append(Text(span["error"], style="red"))
    parts.append(Text(f"span {span['span_id']}  parent {span['parent_id'] or '-'}", style="dim"))
    attributes = json.loads(span["attributes"] or "{}")
    if attributes:
        parts.append(Text("\nattributes", style="bold"))
        for key, value in attributes.items():
            parts.append(Text.assemble(f"  {key} = ", (readable(key, value), "")))
    if span["payload"]:
        for key, value in json.loads(span["payload"]).items():
            parts.append(Text(f"\n{key}", style="bold"))
            parts.extend(payload_lines(key, value))
    return Group(*parts)


def readable(key: str, value: Any) -> str:
    """An attribute's value as a person reads it: 16.480005 s, not 16.480005099999744."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        shown = f"{value:,.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
        seconds = key.endswith(("_s", "time_to_first_token")) and not key.endswith("per_s")
        return shown + (" s" if seconds else "")
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(readable(key, v) if isinstance(v, float) else str(v) for v in value) or "(none)"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def payload_lines(key: str, value: Any) -> list[Any]:
    """Messages as turns, passages as numbered passages with their source, text as text."""
    if key == "messages" and isinstance(value, list):
        lines: list[Any] = []
        for message in value:
            role = message.get("role", "?") if isinstance(message, dict) else "?"
            content = message.get("content") if isinstance(message, dict) else message
            lines.append(Text(f"  {role}", style="bold magenta" if role == "assistant" else "bold"))
            if isinstance(content, list):  # content parts
                content = "\n".join(p.get("text", json.dumps(p)) for p in content if isinstance(p, dict))
            if content:
                lines.append(Text(_indent(str(content))))
            for call in message.get("tool_calls") or [] if isinstance(message, dict) else []:
                function = call.get("function", {})
                lines.append(
                    Text(f"    calls {function.get('name')}({function.get('arguments')})", style="green")
                )
        return lines
    if key == "passages" and isinstance(value, list):
        lines = []
        for number, passage in enumerate(value, start=1):
            where = passage.get("path", "?") + (f" > {passage['heading']}" if passage.get("heading") else "")
            score = passage.get("score")
            lines.append(
                Text.assemble(
                    (f"  [{number}] ", "bold"),
                    (where, "cyan"),
                    f"  score {score:.4g}" if score is not None else "",
                )
            )
            lines.append(Text(_indent(passage.get("text", ""))))
        return lines
    if isinstance(value, str):
        return [Text(_indent(value))]
    return [Text(_indent(json.dumps(value, indent=2, ensure_ascii=False)))]


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (empty)"
