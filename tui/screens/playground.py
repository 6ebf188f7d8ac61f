"""Playground: a streaming chat with one model, its figures, and the escalation reason when the
router hands a question to the cloud."""

from __future__ import annotations

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Select, Static

from tui.screens.base import BaseScreen


class PlaygroundScreen(BaseScreen):
    MODE = "playground"
    BINDINGS = [Binding("ctrl+l", "clear", "New chat")]

    class Piece(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Answered(Message):
        def __init__(self, result) -> None:
            super().__init__()
            self.result = result

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, str]] = []
        self.answer = ""

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-settings"):
            yield Select([], prompt="model", id="chat-model")
            yield Input("0.7", placeholder="temperature", id="chat-temperature", type="number")
            yield Input("256", placeholder="max tokens", id="chat-max-tokens", type="integer")
        with VerticalScroll(id="chat-log"):
            yield Static("Pick a model, type below and press enter.", id="chat-transcript")
        yield Static("", id="chat-figures")
        yield Input(placeholder="ask something (enter to send, ctrl+l for a new chat)", id="chat-input")

    def on_mount(self) -> None:
        self.load_models()
        self.query_one("#chat-input", Input).focus()

    @work(thread=True, exclusive=True, group="playground-models", exit_on_error=False)
    def load_models(self) -> None:
        choices = self.service.model_choices()
        self.app.call_from_thread(self._set_models, choices)

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
        self.history.append({"role": "user", "content": prompt})
        self.answer = ""
        self._show_transcript(pending=True)
        self.query_one("#chat-figures", Static).update(f"{model} is answering...")
        self.generate(model, list(self.history), self._params())

    def _params(self):
        from local_models.types import GenerationParams

        try:
            temperature = float(self.query_one("#chat-temperature", Input).value or 0.7)
            max_tokens = int(self.query_one("#chat-max-tokens", Input).value or 256)
        except ValueError:
            temperature, max_tokens = 0.7, 256
        return GenerationParams(temperature=temperature, max_tokens=max_tokens)

    @work(thread=True, exclusive=True, group="playground", exit_on_error=False, description="chat")
    def generate(self, model: str, messages: list[dict[str, str]], params) -> None:
        result = self.service.chat(
            model, messages, params, lambda piece: self.post_message(self.Piece(piece))
        )
        self.post_message(self.Answered(result))

    def on_playground_screen_piece(self, message: Piece) -> None:
        self.answer += message.text
        self._show_transcript(pending=True)

    def on_playground_screen_answered(self, message: Answered) -> None:
        result = message.result
        self.answer = result.text
        self.history.append({"role": "assistant", "content": result.text})
        self._show_transcript(pending=False)
        figures = (f"{result.model} on {result.hardware}: {result.input_tokens} in, {result.output_tokens} out, "
                   f"TTFT {(result.ttft_s or 0) * 1000:.0f} ms, {result.tokens_per_s:.1f} tok/s, "
                   f"${result.cost_usd:.5f}, {result.finish_reason}, trace {(result.trace_id or '')[:16]}")  # fmt: skip
        route = result.extra.get("route")
        if route == "cloud":
            figures += f"\n[b]escalated to the cloud[/b] because {escape(result.extra['escalation_reason'])}"
        elif result.extra.get("escalation_refused"):
            figures += (f"\nwanted to escalate because {escape(result.extra['escalation_reason'])}, but "
                        f"{escape(result.extra['escalation_refused'])}")  # fmt: skip
        self.query_one("#chat-figures", Static).update(figures)

    def _show_transcript(self, pending: bool) -> None:
        lines = []
        for turn in self.history:
            who = "[b]you[/b]" if turn["role"] == "user" else "[b]model[/b]"
            lines.append(f"{who}: {escape(turn['content'])}")
        if pending:
            lines.append(f"[b]model[/b]: {escape(self.answer)}▌")
        self.query_one("#chat-transcript", Static).update("\n\n".join(lines))
        self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    def action_clear(self) -> None:
        self.history, self.answer = [], ""
        self.query_one("#chat-transcript", Static).update("New chat.")
        self.query_one("#chat-figures", Static).update("")
