"""Rating answers from any screen: `+` or `-`, then an optional note (and, in Compare, which
model's answer), stored as a feedback score on the answer's trace (services: rate_trace).

Out of a text field only (escape leaves one), as the digits that switch screens: a text field
takes `+` and `-` as text. (Deciding by whether the field is empty raced in a real terminal: keys
typed fast reach the app before the field has taken the ones before them.)
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from tui.screens.base import set_border_title

__all__ = ["RATING_BINDINGS", "Rating", "RateNote"]

RATING_BINDINGS = [
    Binding("plus", "rate('up')", "Rate up"),
    Binding("minus", "rate('down')", "Rate down"),
]


class RateNote(ModalScreen[tuple[str | None, str] | None]):
    """Asks for an optional note; enter saves the rating, escape drops it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, verdict: str, what: str, subjects: list[str] | None = None) -> None:
        super().__init__()
        self.verdict, self.what, self.subjects = verdict, what, subjects or []

    def compose(self) -> ComposeResult:
        with Vertical(id="rate-box"):
            yield Static(f"Rate {self.what} [b]{self.verdict}[/b]", id="rate-title")
            if self.subjects:
                subject = Select(
                    [(s, s) for s in self.subjects],
                    value=self.subjects[0],
                    allow_blank=False,
                    id="rate-subject",
                )
                yield subject
            note = Input(placeholder="optional: enter saves, escape cancels", id="rate-note")
            yield note

    def on_mount(self) -> None:
        # Focus follows the order on screen: the answer to rate first (when there is a choice),
        # then tab to the note. Starting in the note sent a user's tab back to the choice, and
        # the note typed then went to the choice.
        set_border_title(self.query_one("#rate-note", Input), "note")
        if self.subjects:
            select = self.query_one("#rate-subject", Select)
            set_border_title(select, "whose answer")
            select.focus()
        else:
            self.query_one("#rate-note", Input).focus()

    @on(Input.Submitted, "#rate-note")
    def save(self, event: Input.Submitted) -> None:
        subject = self.query_one("#rate-subject", Select).value if self.subjects else None
        self.dismiss((subject if isinstance(subject, str) else None, event.value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class Rating:
    """Mixed into a screen that shows answers: says which trace (and answers) `+`/`-` rate."""

    RATING_SOURCE = "app"

    def rating_target(self) -> tuple[str | None, str, list[str] | None]:
        """(trace id or None, what it is in words, the answers to choose from or None)."""
        return None, "", None

    def after_rating(self) -> None:
        """Called on the UI thread once a rating is stored (a screen may reload)."""

    def action_rate(self, verdict: str) -> None:
        trace_id, what, subjects = self.rating_target()
        if trace_id is None:
            self.notify("Nothing to rate yet: rate an answer once it is there.", severity="warning")  # type: ignore[attr-defined]
            return

        def rated(answer: tuple[str | None, str] | None) -> None:
            if answer is not None:
                self.save_rating(trace_id, verdict, answer[1], answer[0])

        self.push_keeping_focus(RateNote(verdict, what, subjects), rated)  # type: ignore[attr-defined]

    @work(thread=True, group="rate", exit_on_error=False, description="rate answer")
    def save_rating(self, trace_id: str, verdict: str, note: str, subject: str | None) -> None:
        feedback = self.service.rate_trace(  # type: ignore[attr-defined]
            trace_id, verdict, note or None, source=self.RATING_SOURCE, subject=subject
        )
        self.app.call_from_thread(self._rated, verdict, feedback)  # type: ignore[attr-defined]

    def _rated(self, verdict: str, feedback: dict) -> None:
        self.notify(f"rated {verdict}: {feedback['up']} up, {feedback['down']} down", title="Feedback")  # type: ignore[attr-defined]
        self.after_rating()
