"""Compare: one prompt to 2-4 models, streaming side by side with their figures."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from tui.markup import escape
from tui.rating import RATING_BINDINGS, Rating
from tui.screens.base import BaseScreen

COLUMNS = 4


class CompareScreen(Rating, BaseScreen):
    MODE = "compare"
    PANE_TITLES = {"#cmp-models": "models", "#cmp-prompt": "prompt"}
    RATING_SOURCE = "compare"
    BINDINGS = RATING_BINDINGS

    class Piece(Message):
        def __init__(self, run: int, index: int, text: str) -> None:
            super().__init__()
            self.run, self.index, self.text = run, index, text

    class Finished(Message):
        def __init__(self, run: int, outcomes: list) -> None:
            super().__init__()
            self.run, self.outcomes = run, outcomes

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.models: list[str] = []
        self.run = 0  # messages from an earlier comparison still streaming are dropped
        self.trace_id: str | None = None  # the finished comparison's trace (all answers in it)
        self.answered: list[str] = []  # the models that answered it

    def compose_body(self) -> ComposeResult:
        yield Input(
            placeholder="models, comma separated (2 to 4), e.g. smollm2, gemma3-270m", id="cmp-models"
        )
        yield Input(placeholder="prompt (enter to compare)", id="cmp-prompt")
        yield Horizontal(
            Static("Results stream here, one column per model.", id="cmp-empty"), id="cmp-columns"
        )

    def on_mount(self) -> None:
        self.prefill()

    @work(thread=True, group="compare-models", exit_on_error=False)
    def prefill(self) -> None:
        choices = [c for c in self.service.model_choices() if c != "auto"][:2]
        self.app.call_from_thread(
            lambda: setattr(self.query_one("#cmp-models", Input), "value", ", ".join(choices))
        )

    @on(Input.Submitted)
    async def start(self) -> None:
        models = [m.strip() for m in self.query_one("#cmp-models", Input).value.split(",") if m.strip()]
        prompt = self.query_one("#cmp-prompt", Input).value.strip()
        if not prompt or not 2 <= len(models) <= COLUMNS:
            self.notify("Give 2 to 4 models and a prompt.", severity="warning")
            return
        self.texts = [""] * len(models)
        columns = self.query_one("#cmp-columns", Horizontal)
        # Fresh columns per comparison: toggling hidden ones left stale borders on screen.
        await columns.remove_children()
        await columns.mount_all(
            VerticalScroll(
                Static(f"[b]{escape(name)}[/b]", id=f"cmp-text-{index}"),
                Static("waiting for its turn...", id=f"cmp-fig-{index}", classes="cmp-figures"),
                classes="cmp-column",
                id=f"cmp-col-{index}",
            )
            for index, name in enumerate(models)
        )
        self.models = models
        self.trace_id, self.answered = None, []
        self.run += 1
        self.run_compare(self.run, models, prompt)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False, description="compare")
    def run_compare(self, run: int, models: list[str], prompt: str) -> None:
        outcomes = self.service.compare(
            models,
            prompt,
            None,
            {"max_tokens": 256},
            lambda index, piece: self.post_message(self.Piece(run, index, piece)),
        )
        self.post_message(self.Finished(run, outcomes))

    def on_compare_screen_piece(self, message: Piece) -> None:
        if message.run != self.run:
            return
        self.texts[message.index] += message.text
        self.query_one(f"#cmp-text-{message.index}", Static).update(
            f"[b]{escape(self.models[message.index])}[/b]\n{escape(self.texts[message.index])}"
        )
        self.query_one(f"#cmp-fig-{message.index}", Static).update("streaming...")
        # After the next layout: scrolled now, the column went to the end of the text before
        # this piece and stayed on its first lines once the answer outgrew it.
        column = self.query_one(f"#cmp-col-{message.index}", VerticalScroll)
        self.call_after_refresh(column.scroll_end, animate=False)

    def on_compare_screen_finished(self, message: Finished) -> None:
        if message.run != self.run:
            return
        for index, outcome in enumerate(message.outcomes):
            figures = self.query_one(f"#cmp-fig-{index}", Static)
            if isinstance(outcome, Exception):
                figures.update(f"[red]{escape(outcome.one_line())}[/red]")
                continue
            self.query_one(f"#cmp-text-{index}", Static).update(
                f"[b]{escape(self.models[index])}[/b]\n{escape(outcome.text)}"
            )
            self.trace_id = outcome.trace_id or self.trace_id
            self.answered.append(self.models[index])
            figures.update(
                f"TTFT {(outcome.ttft_s or 0) * 1000:.0f} ms · {outcome.tokens_per_s:.1f} tok/s · "
                f"{outcome.input_tokens}/{outcome.output_tokens} tokens · ${outcome.cost_usd:.5f} · "
                f"{outcome.finish_reason}"
            )
            column = self.query_one(f"#cmp-col-{index}", VerticalScroll)
            self.call_after_refresh(column.scroll_end, animate=False)  # the figures are its last lines

    def rating_target(self) -> tuple[str | None, str, list[str] | None]:
        """`+`/`-` (out of the prompt field: escape first) rate one model's answer: asked in the
        note dialog, stored as the score's subject on the comparison's trace."""
        return self.trace_id, "an answer of this comparison", self.answered
