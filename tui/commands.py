"""The command palette's entries (ctrl+p): go to any screen, and the main actions, each landing
on its screen with the right field focused or the action started."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.screens.base import NAVIGATION

# (command, what it does, screen, "#field" to focus or "action" to run there)
ACTIONS = (
    ("Ingest a file or folder", "into a collection, with live progress", "documents", "#ingest-path"),
    ("Search a collection", "hybrid, vector or text search with a preview", "documents", "#search-query"),
    ("New chat", "a fresh Playground conversation", "playground", "clear"),
    ("Ask a model", "type a question in the Playground", "playground", "#chat-input"),
    ("Compare models", "one prompt, side by side", "compare", "#cmp-models"),
    ("Run a workflow", "pick one, type its input", "workflows", "#workflows"),
    ("New workflow from a template", "rag, router or agent", "workflows", "focus_new"),
    ("Run an eval", "name models for the selected dataset", "evals", "#ev-models"),
    ("Search traces", "prompt and answer text", "traces", "#f-text"),
    ("Pull a model from the Hub", "search, see what fits, pull", "models", "#hub-query"),
    ("Discover models on this machine", "HF cache, LM Studio, Ollama", "models", "discover"),
    ("Export a workflow", "LangGraph, LiteLLM, vLLM or OTel files", "export", "#export-workflow"),
    ("Usage and cost", "requests, tokens, cost, latency", "usage", None),
)


class ActionsProvider(Provider):
    """Go to any screen, or straight to one of its main actions."""

    def _commands(self) -> list[tuple[str, str, object]]:
        commands = [
            (f"Go to {title}", f"key {key}", partial(self.app.switch_mode, mode))
            for key, mode, title in NAVIGATION
        ]
        commands += [
            (name, help_text, partial(self.run_on, mode, target)) for name, help_text, mode, target in ACTIONS
        ]
        return commands

    def run_on(self, mode: str, target: str | None) -> None:
        self.app.switch_mode(mode)
        if target is not None:
            self.app.call_after_refresh(self._land, target)

    def _land(self, target: str) -> None:
        screen = self.app.screen
        if target.startswith("#"):
            screen.query_one(target).focus()
        else:
            screen.run_action(target)

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands()[len(NAVIGATION) :]:
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
