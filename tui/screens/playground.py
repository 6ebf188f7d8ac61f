"""Playground: a streaming chat with one model, its figures, and the escalation reason when the
router hands a question to the cloud. With a collection chosen, each question retrieves passages
and the answer cites them ([1], [2]); the cited passages are listed under it. With tools named,
the model may call them: each call and its result show in the transcript as they run."""

from __future__ import annotations

import threading
from functools import lru_cache

from rich.console import Group
from rich.markdown import Markdown
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Select, Static

from tui.markup import escape
from tui.rating import RATING_BINDINGS, Rating
from tui.screens.base import BaseScreen
from tui.sources import SourcesScreen


class PlaygroundScreen(Rating, BaseScreen):
    MODE = "playground"
    PANE_TITLES = {
        "#chat-log": "chat",
        "#chat-model": "model",
        "#chat-temperature": "temperature",
        "#chat-max-tokens": "max tokens",
        "#chat-system": "system prompt",
        "#chat-collection": "collection",
        "#chat-k": "k",
        "#chat-mode": "search",
        "#chat-tools": "tools",
    }
    RATING_SOURCE = "playground"
    BINDINGS = [
        Binding("ctrl+l", "clear", "New chat"),
        Binding("ctrl+t", "open_trace", "Open trace"),
        Binding("ctrl+y", "keep", "Keep left-out answer", show=False),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("up", "edit_last", "Edit last question", show=False),
        Binding("ctrl+o", "sources", "Sources"),
        *RATING_BINDINGS,
    ]

    # Messages carry the number of the request they belong to: one that was cancelled by a newer
    # request may still post a last piece, which is then dropped.
    class Piece(Message):
        def __init__(self, request: int, text: str) -> None:
            super().__init__()
            self.request, self.text = request, text

    class Answered(Message):
        def __init__(self, request: int, result, conversation: list | None = None) -> None:
            super().__init__()
            self.request, self.result, self.conversation = request, result, conversation

    class ToolRan(Message):
        def __init__(self, request: int, event: dict) -> None:
            super().__init__()
            self.request, self.event = request, event

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict] = []
        self.answer = ""
        self.tool_lines: list[str] = []  # the calls the pending answer made so far
        self.request = 0  # the number of the newest request; older ones are stale
        self.pending = False  # whether the newest request is still answering
        self.cancel = threading.Event()
        self.trace_id: str | None = None  # the last answer's trace
        self.edit_from: int | None = None  # up: the question being edited replaces the turns from here
        self.sources: list[dict] = []  # the last answer's passages (ctrl+o shows them)

    def compose_body(self) -> ComposeResult:
        # Two rows, each field titled in its border: one row of 160 columns was cut at 100.
        with Horizontal(id="chat-settings"):
            yield Select([], prompt="pick a model", id="chat-model")
            yield Input("0.7", id="chat-temperature", type="number")
            yield Input("256", id="chat-max-tokens", type="integer")
            yield Input(placeholder="optional", id="chat-system")
        with Horizontal(id="chat-grounding"):
            yield Select([], prompt="none", id="chat-collection")
            yield Input("4", id="chat-k", type="integer")
            yield Select(
                [("hybrid", "hybrid"), ("vector", "vector"), ("text", "text")],
                value="hybrid",
                allow_blank=False,
                id="chat-mode",
            )
            yield Input(placeholder="calculator, ... (`workbench tools list`)", id="chat-tools")
        with VerticalScroll(id="chat-log"):
            yield Static("Pick a model, type below and press enter.", id="chat-transcript")
        yield Static("", id="chat-figures")
        yield Input(
            placeholder="ask something (enter sends, ctrl+l starts a new chat; escape, then + or - rates the answer)",
            id="chat-input",
        )

    def on_mount(self) -> None:
        self.load_models()
        self.query_one("#chat-input", Input).focus()

    @work(thread=True, exclusive=True, group="playground-models", exit_on_error=False)
    def load_models(self) -> None:
        choices = self.service.model_choices()
        self.app.call_from_thread(self._set_models, choices)
        collections = [c["name"] for c in self.service.list_collections()]
        self.app.call_from_thread(
            self.query_one("#chat-collection", Select).set_options, [(name, name) for name in collections]
        )

    def _set_models(self, choices: list[str]) -> None:
        select = self.query_one("#chat-model", Select)
        select.set_options([(name, name) for name in choices])
        if choices:
            select.value = choices[0]
        else:
            self.query_one("#chat-transcript", Static).update(
                "No models yet: run `workbench models fetch` (or `make run`), register a GGUF file "
                "with `workbench models register`, or add a cloud endpoint to workbench.toml."
            )

    @on(Input.Submitted, "#chat-input")
    def send(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        model = self.query_one("#chat-model", Select).value
        if not prompt:
            return
        if not isinstance(model, str):
            self.notify("Pick a model first (fetch some with `workbench models fetch`).", severity="warning")
            return
        event.input.value = ""
        self.stop_answer()
        if self.edit_from is not None:  # an edited question replaces it and what followed
            self.history = self.history[: self.edit_from]
            self.edit_from = None
        self.ask(prompt, model)

    def ask(self, prompt: str, model: str) -> None:
        self.history.append({"role": "user", "content": prompt})
        self.answer = ""
        self.tool_lines = []
        self.request += 1
        self.pending = True
        self.cancel = threading.Event()
        self._show_transcript(pending=True)
        self.query_one("#chat-figures", Static).update(f"{model} is answering...")
        tools = [t.strip() for t in self.query_one("#chat-tools", Input).value.split(",") if t.strip()]
        grounded = self._collection()
        if tools and grounded is not None:
            self.notify(
                "Tools or a collection: the tools are used, the collection is not.", severity="warning"
            )
            grounded = None
        self.generate(self.request, model, self._sent(), self._params(), self.cancel, grounded, tools)

    def _sent(self) -> list[dict]:
        """The conversation as the model reads it: the system prompt first, if any; a stopped
        answer stays on the screen, marked, but is not sent back (its cut-off text would steer
        the next answer)."""
        system = self.query_one("#chat-system", Input).value.strip()
        turns = [turn for turn in self.history if not _left_out(turn)]
        return ([{"role": "system", "content": system}] if system else []) + turns

    def stop_answer(self) -> None:
        """Cancel the answer in flight (the model stops decoding); what it said so far stays on
        the screen, marked stopped, and out of what the next turn sends."""
        if not self.pending:
            return
        self.cancel.set()
        self.pending = False
        self.history.append({"role": "assistant", "content": self.answer, "stopped": True})
        self.query_one("#chat-figures", Static).update("stopped")

    def _params(self) -> dict[str, float | int]:
        try:
            temperature = float(self.query_one("#chat-temperature", Input).value or 0.7)
            max_tokens = int(self.query_one("#chat-max-tokens", Input).value or 256)
        except ValueError:
            temperature, max_tokens = 0.7, 256
        return {"temperature": temperature, "max_tokens": max_tokens}

    def _collection(self) -> tuple[str, int, str] | None:
        """(collection, k, mode) when the chat answers from a collection."""
        name = self.query_one("#chat-collection", Select).value
        if not isinstance(name, str):
            return None
        try:
            k = max(1, min(int(self.query_one("#chat-k", Input).value or 4), 20))
        except ValueError:
            k = 4
        return name, k, str(self.query_one("#chat-mode", Select).value)

    @work(thread=True, exclusive=True, group="playground", exit_on_error=False, description="chat")
    def generate(
        self, request: int, model: str, messages: list[dict], params, cancel, grounded, tools: list[str]
    ) -> None:
        def stream(piece: str) -> None:
            self.post_message(self.Piece(request, piece))

        if tools:
            result, conversation = self.service.workflows.chat_with_tools(
                model,
                messages,
                tools,
                params,
                stream,
                lambda e: self.post_message(self.ToolRan(request, e)),
                cancel,
            )
            self.post_message(self.Answered(request, result, conversation))
            return
        if grounded is None:
            result = self.service.chat(model, messages, params, stream, cancel=cancel)
        else:
            collection, k, mode = grounded
            result = self.service.chat_with_collection(
                model, messages, collection, k, mode, params, stream, cancel=cancel
            )
        self.post_message(self.Answered(request, result))

    def on_playground_screen_piece(self, message: Piece) -> None:
        if message.request != self.request or not self.pending:
            return
        self.answer += message.text
        self._show_transcript(pending=True)

    def on_playground_screen_tool_ran(self, message: ToolRan) -> None:
        if message.request != self.request or not self.pending:
            return
        event = message.event
        self.tool_lines.append(_tool_line(event["tool"], event["arguments"], event["output"]))
        self._show_transcript(pending=True)

    def on_playground_screen_answered(self, message: Answered) -> None:
        if message.request != self.request or not self.pending:
            return
        self.pending = False
        result = message.result
        self.answer = result.text
        found = self.service.answer_doubts(result)
        if message.conversation is not None:  # the turn's calls and results are part of it now
            self.history = [m for m in message.conversation if m["role"] != "system"]
        else:
            turn = {"role": "assistant", "content": result.text}
            if any(doubt.startswith("repeats") for doubt in found):
                turn["looping"] = True  # sent back, a loop begets a loop: left out unless kept
            self.history.append(turn)
        self.trace_id = result.trace_id
        self.sources = result.extra.get("sources", [])
        self._show_transcript(pending=False)
        figures = (
            f"{result.model} on {result.hardware}: {result.input_tokens} in, {result.output_tokens} out, "
            f"TTFT {(result.ttft_s or 0) * 1000:.0f} ms, {result.tokens_per_s:.1f} tok/s, "
            f"${result.cost_usd:.5f}, {result.finish_reason}, trace {(result.trace_id or '')[:16]}"
        )
        route = result.extra.get("route")
        if route == "cloud":
            figures += f"\n[b]escalated to the cloud[/b] because {escape(result.extra['escalation_reason'])}"
        elif result.extra.get("escalation_refused"):
            figures += (
                f"\nwanted to escalate because {escape(result.extra['escalation_reason'])}, but "
                f"{escape(result.extra['escalation_refused'])}"
            )
        figures += _sources(result.extra)
        figures += self._doubts(result, found)
        self.query_one("#chat-figures", Static).update(figures)

    def _doubts(self, result, found: list[str]) -> str:
        """A warning, with the ways forward, when the answer looks unreliable."""
        if not found:
            return ""
        ways = self.service.ways_forward(result.model)
        return (
            f"\n[yellow][b]this answer looks unreliable[/b]: {escape('; '.join(found))}[/yellow]"
            f"\n  try {escape(' or '.join(ways))}"
        )

    def _show_transcript(self, pending: bool) -> None:
        parts: list = []
        results = {m.get("tool_call_id"): m for m in self.history if m["role"] == "tool"}
        for turn in self.history:
            if turn["role"] == "tool":
                continue  # shown with its call
            if turn.get("tool_calls"):
                for call in turn["tool_calls"]:
                    done = results.get(call["id"], {})
                    parts.append(
                        Text.from_markup(
                            _tool_line(
                                call["function"]["name"],
                                call["function"]["arguments"],
                                done.get("content", ""),
                            )
                        )
                    )
                continue
            if turn["role"] == "user":
                parts.append(Text.assemble(("you", "bold"), ": ", turn["content"] or ""))
                continue
            reason = _left_out(turn)
            parts.append(
                Text(f"model ({reason}, not sent again; ctrl+y keeps it)" if reason else "model", "bold")
            )
            parts.append(_markdown(turn["content"] or ""))
        if pending:
            parts += [Text.from_markup(line) for line in self.tool_lines]
            parts.append(Text("model", "bold"))
            parts.append(_markdown(self.answer + "▌"))
        self.query_one("#chat-transcript", Static).update(Group(*_spaced(parts)))
        log = self.query_one("#chat-log", VerticalScroll)
        self.call_after_refresh(log.scroll_end, animate=False)  # once the new text is laid out

    def action_open_trace(self) -> None:
        self.open_trace(self.trace_id, "Ask something first.")

    def rating_target(self) -> tuple[str | None, str, list[str] | None]:
        return (None if self.pending else self.trace_id), "the last answer", None

    def action_regenerate(self) -> None:
        """Ask the last question again, in place of its answer."""
        model = self.query_one("#chat-model", Select).value
        last = next(
            (i for i in range(len(self.history) - 1, -1, -1) if self.history[i]["role"] == "user"), None
        )
        if last is None or not isinstance(model, str):
            self.notify("Ask something first.", severity="warning")
            return
        self.stop_answer()
        prompt = self.history[last]["content"]
        self.history = self.history[:last]
        self.ask(prompt, model)

    def action_edit_last(self) -> None:
        """Up in the empty question field: the last question back in it; sending replaces that
        turn and everything after it."""
        field = self.query_one("#chat-input", Input)
        if self.focused is not field or field.value:
            return
        last = next(
            (i for i in range(len(self.history) - 1, -1, -1) if self.history[i]["role"] == "user"), None
        )
        if last is None:
            return
        self.stop_answer()
        self.edit_from = last
        field.value = self.history[last]["content"]
        field.cursor_position = len(field.value)
        self.query_one("#chat-figures", Static).update(
            "editing the last question: enter sends it in its place"
        )

    def action_sources(self) -> None:
        """The passages the last answer was given, with their text (its citations open here)."""
        if not self.sources:
            self.notify("The last answer was not from a collection.", severity="warning")
            return
        self.app.push_screen(SourcesScreen(self.sources))

    def action_keep(self) -> None:
        """Send the last stopped or looping answer back with the next turns after all."""
        turn = next((t for t in reversed(self.history) if _left_out(t)), None)
        if turn is None:
            self.notify("No stopped or looping answer to keep.", severity="warning")
            return
        turn.pop("stopped", None)
        turn.pop("looping", None)
        self._show_transcript(pending=self.pending)
        self.notify("kept: the model reads that answer with the next turn")

    def action_clear(self) -> None:
        self.stop_answer()
        self.history, self.answer, self.trace_id, self.sources, self.edit_from = [], "", None, [], None
        self.query_one("#chat-transcript", Static).update("New chat.")
        self.query_one("#chat-figures", Static).update("")


def _left_out(turn: dict) -> str | None:
    """Why an answer stays on screen but out of what the model reads, if it does."""
    return "stopped" if turn.get("stopped") else "looping" if turn.get("looping") else None


@lru_cache(maxsize=256)
def _markdown(text: str) -> Markdown:
    """An answer as the model meant it: Markdown, code blocks highlighted. Cached by text: the
    transcript is drawn again for every streamed piece, and finished turns need no new parse."""
    return Markdown(text, code_theme="monokai", hyperlinks=False)


def _spaced(parts: list) -> list:
    """A blank line before each speaker's line and each tool call; an answer follows its speaker."""
    spaced: list = []
    for part in parts:
        if spaced and isinstance(part, Text):
            spaced.append(Text(""))
        spaced.append(part)
    return spaced


def _tool_line(tool: str, arguments: str, output: str) -> str:
    result = " ".join(str(output).split())
    return f"[magenta]tool {escape(tool)}({escape(arguments)})[/magenta] -> {escape(result[:300])}"


def _sources(extra: dict) -> str:
    """The passages an answer from a collection cited (all it was given, when it cited none)."""
    if "sources" not in extra:
        return ""
    sources = extra["sources"]
    cited = [s for s in sources if s["cited"]]
    lines = [f"\n[b]{'cited' if cited else 'retrieved (none cited)'}[/b] from {escape(extra['collection'])}:"]
    for source in cited or sources:
        heading = f" > {source['heading']}" if source["heading"] else ""
        lines.append(f"  [{source['number']}] {escape(source['path'] + heading)}")
    if not sources:
        lines.append("  no passage matched")
    lines += [
        f"  [yellow]dropped {escape(d['path'])}: reads as a prompt injection[/yellow]"
        for d in extra["dropped"]
    ]
    lines.append("[dim]ctrl+o shows the passages, ctrl+t the trace[/dim]")
    return "\n".join(lines)
