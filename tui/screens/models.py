"""Models: the catalog with what each model is (read from its GGUF header), the fit plan of the
selected one, load/unload in this app, GPU status, cloud endpoints and the offline switch; the
Hugging Face Hub searched and pulled from (a fit badge per quant, progress, stop), and the
models LM Studio, Ollama and the HF cache already hold, discovered."""

from __future__ import annotations

import threading
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from tui.markup import escape
from tui.screens.base import BaseScreen
from tui.table import Table


class ModelsScreen(BaseScreen):
    MODE = "models"
    PANE_TITLES = {
        "#models": "local models",
        "#model-side": "fit plan",
        "#hub": "Hub repos",
        "#hub-quants": "quants",
        "#cloud": "cloud endpoints",
        "#hub-query": "Hub search",
    }
    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("l", "load", "Load"),
        Binding("u", "unload", "Unload"),
        Binding("o", "toggle_offline", "Offline on/off"),
        Binding("p", "pull", "Pull from the Hub"),
        Binding("x", "stop_pull", "Stop the pull"),
        Binding("d", "discover", "Discover"),
    ]

    class HubFound(Message):
        def __init__(self, rows: list[dict]) -> None:
            super().__init__()
            self.rows = rows

    class HubQuants(Message):
        def __init__(self, repo: str, rows: list[dict]) -> None:
            super().__init__()
            self.repo, self.rows = repo, rows

    class HubStatus(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Loaded(Message):
        def __init__(self, catalog: dict) -> None:
            super().__init__()
            self.catalog = catalog

    class Planned(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose_body(self) -> ComposeResult:
        yield Static("", id="gpu-status")
        with Horizontal(id="models-main"):
            table = Table(id="models", cursor_type="row")
            table.add_columns(
                "alias",
                "kind",
                "present",
                "loaded",
                "size MB",
                "arch",
                "quant",
                "params",
                "ctx",
                "tools",
                "path",
            )
            yield table
            with Vertical(id="model-side"):
                yield Static("Select a model to see its fit plan.", id="model-plan")
        yield Static("[b]Hugging Face Hub[/b]", id="hub-title")
        yield Input(
            placeholder="search the Hub for GGUF models, then Enter (HF_ENDPOINT for a mirror)",
            id="hub-query",
        )
        with Horizontal(id="hub-main"):
            hub = Table(id="hub", cursor_type="row")
            hub.add_columns("repo", "downloads", "likes", "updated", "access")
            yield hub
            quants = Table(id="hub-quants", cursor_type="row")
            quants.add_columns("quant", "size", "needs with KV", "fit here", "")
            yield quants
        yield Static("Select a repo to see its quants and which fits this machine.", id="hub-status")
        yield Static("[b]Cloud endpoints[/b]", id="cloud-title")
        cloud = Table(id="cloud", cursor_type="row")
        cloud.add_columns("endpoint", "kind", "base url", "models", "key", "usable")
        yield cloud
        yield Static(
            "l load · u unload (in this app; kept warm between chats) · o offline on/off · r refresh · "
            "p pull the selected quant (or the one that fits) · x stop the pull · d discover the models "
            "of LM Studio, Ollama and the HF cache. "
            "Fetch the default models with `workbench models fetch`; register any GGUF file or "
            "sentence-transformers folder with `workbench models register PATH`; add cloud "
            "endpoints under [cloud.NAME] in workbench.toml.",
            classes="note",
        )

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load_catalog()

    def on_screen_resume(self) -> None:
        # Shown again: what other screens and processes did meanwhile is on it. (Not on the
        # first showing: on_mount has just loaded it.)
        if self.shown_before:
            self.action_refresh()
        self.shown_before = True

    @work(thread=True, exclusive=True, group="models", exit_on_error=False, description="models")
    def load_catalog(self) -> None:
        rows = []
        for model in self.service.list_models():
            info = self.service.model_info(model.alias) if model.present and model.kind == "gguf" else None
            rows.append((model, info))
        catalog = {
            "models": rows,
            "loaded": self.service.loaded_models(),
            "gpu": self.service.gpu_status(),
            "cloud": self.service.cloud_endpoints(),
            "offline": self.service.offline,
        }
        self.post_message(self.Loaded(catalog))

    def on_models_screen_loaded(self, message: Loaded) -> None:
        catalog = message.catalog
        offline = "[b]on[/b]: no connection leaves this machine" if catalog["offline"] else "off"
        self.query_one("#gpu-status", Static).update(
            f"llama.cpp: {catalog['gpu']}    offline mode: {offline}"
        )
        table = self.query_one("#models", DataTable)
        cursor = table.cursor_row
        table.clear()
        for model, info in catalog["models"]:
            meta = ("-",) * 5
            if info is not None:
                meta = (
                    info.architecture,
                    info.file_type,
                    info.parameters_label,
                    str(info.context_length or "-"),
                    # native: the template's own tool format; grammar: calls held by one
                    info.tool_format,
                )
            table.add_row(
                model.alias,
                model.kind,
                "yes" if model.present else "no",
                "yes" if model.alias in catalog["loaded"] else "",
                f"{model.size_bytes / 1e6:.1f}",
                *meta,
                str(model.path),
                key=model.alias,
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        cloud = self.query_one("#cloud", DataTable)
        cloud.clear()
        for row in catalog["cloud"]:
            usable = "yes" if row["usable"] else "blocked offline"
            cloud.add_row(
                row["name"], row["kind"], row["base_url"], ", ".join(row["models"]), row["key"], usable
            )
        if not catalog["cloud"]:
            cloud.add_row("none", "", "add [cloud.NAME] to workbench.toml", "", "", "")

    def _selected(self) -> str | None:
        table = self.query_one("#models", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowHighlighted, "#models")
    def show_plan(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.plan(str(event.row_key.value))

    @work(thread=True, exclusive=True, group="model-plan", exit_on_error=False, description="plan")
    def plan(self, alias: str) -> None:
        info = next((m for m in self.service.list_models() if m.alias == alias), None)
        if info is None or info.kind != "gguf" or not info.present:
            text = f"{alias}: " + ("an embedding model" if info and info.kind != "gguf" else "not present")
        else:
            plan = self.service.plan(alias)
            text = (
                f"[b]{alias}[/b] at {plan.n_ctx} tokens of context\n"
                f"weights  {mib(plan.weights_bytes)}\nKV cache {mib(plan.kv_bytes)}\n"
                f"compute  {mib(plan.compute_bytes)}\ntotal    {mib(plan.total_bytes)}\n"
                f"free VRAM {mib(plan.gpu_free_bytes)}, RAM {mib(plan.ram_free_bytes)}\n{plan.summary}"
            )
        self.post_message(self.Planned(text))

    def on_models_screen_planned(self, message: Planned) -> None:
        self.query_one("#model-plan", Static).update(message.text)

    def action_load(self) -> None:
        alias = self._selected()
        if alias:
            self.notify(f"loading {alias}...")
            self.load_model(alias)

    @work(thread=True, group="model-load", exit_on_error=False, description="load")
    def load_model(self, alias: str) -> None:
        loaded = self.service.load_model(alias)
        self.app.call_from_thread(
            self.notify, f"{loaded['model']} loaded in {loaded['load_s']:.2f} s on {loaded['hardware']}"
        )
        self.load_catalog()

    def action_unload(self) -> None:
        alias = self._selected()
        if alias:
            self.unload_model(alias)

    @work(thread=True, group="model-load", exit_on_error=False, description="unload")
    def unload_model(self, alias: str) -> None:
        self.service.unload_model(alias)
        self.load_catalog()

    def action_toggle_offline(self) -> None:
        self.toggle_offline(not self.service.offline)

    @work(thread=True, group="offline", exit_on_error=False, description="offline")
    def toggle_offline(self, offline: bool) -> None:
        self.service.set_offline(offline)
        self.app.call_from_thread(
            self.notify, f"offline mode {'on' if offline else 'off'} (saved to workbench.toml)"
        )
        self.load_catalog()

    # -- the Hub -----------------------------------------------------------------------------

    @on(Input.Submitted, "#hub-query")
    def search_hub(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.post_message(self.HubStatus(f"searching the Hub for '{event.value.strip()}'..."))
            self.hub_search(event.value.strip())

    @work(thread=True, exclusive=True, group="hub", exit_on_error=False, description="hub search")
    def hub_search(self, text: str) -> None:
        try:
            rows = self.service.search_hub(text)
        except Exception as exc:
            self.post_message(self.HubStatus(f"[red]{escape(_one_line(exc))}[/red]"))
            raise
        self.post_message(self.HubFound(rows))

    def on_models_screen_hub_found(self, message: HubFound) -> None:
        table = self.query_one("#hub", DataTable)
        table.clear()
        self.query_one("#hub-quants", DataTable).clear()
        for row in message.rows:
            access = "gated: HF_TOKEN" if row["gated"] else "open"
            table.add_row(
                row["repo"],
                f"{row['downloads']:,}",
                str(row["likes"]),
                row["updated"],
                access,
                key=row["repo"],
            )
        text = (
            f"{len(message.rows)} repos; Enter on one shows its quants"
            if message.rows
            else "nothing on the Hub matches"
        )
        self.post_message(self.HubStatus(text))
        if message.rows:
            table.focus()

    @on(DataTable.RowSelected, "#hub")
    def show_quants(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(self.HubStatus(f"reading {event.row_key.value}'s quants and one header..."))
            self.hub_quants(str(event.row_key.value))

    @work(thread=True, exclusive=True, group="hub", exit_on_error=False, description="hub quants")
    def hub_quants(self, repo: str) -> None:
        try:
            rows = self.service.hub_quants(repo)
        except Exception as exc:
            self.post_message(self.HubStatus(f"[red]{escape(_one_line(exc))}[/red]"))
            raise
        self.post_message(self.HubQuants(repo, rows))

    def on_models_screen_hub_quants(self, message: HubQuants) -> None:
        self._quants_of = message.repo
        table = self.query_one("#hub-quants", DataTable)
        table.clear()
        chosen = None
        for n, row in enumerate(message.rows):
            mark = "<- pulled by fit" if row["chosen"] else ""
            fit = row["fit"] if row["fit"] != "too big" else "[red]too big[/red]"
            table.add_row(row["quant"], mib(row["size"]), mib(row["needs"]), fit, mark, key=row["quant"])
            chosen = n if row["chosen"] else chosen
        if chosen is not None:
            table.move_cursor(row=chosen)
        table.focus()
        self.post_message(self.HubStatus(f"{message.repo}: p pulls the highlighted quant"))

    def action_pull(self) -> None:
        hub = self.query_one("#hub", DataTable)
        if not hub.row_count:
            self.notify("search the Hub first (the field above the table)", severity="warning")
            return
        repo = str(hub.coordinate_to_cell_key(hub.cursor_coordinate).row_key.value)
        quants = self.query_one("#hub-quants", DataTable)
        spec = repo
        if quants.row_count and getattr(self, "_quants_of", None) == repo:
            spec = f"{repo}:{quants.coordinate_to_cell_key(quants.cursor_coordinate).row_key.value}"
        self._stop_pull = threading.Event()
        self.post_message(self.HubStatus(f"pulling {spec}... (x stops; pulling again resumes)"))
        self.pull(spec, self._stop_pull)

    def action_stop_pull(self) -> None:
        stop = getattr(self, "_stop_pull", None)
        if stop is not None:
            stop.set()

    @work(thread=True, exclusive=True, group="hub-pull", exit_on_error=False, description="pull")
    def pull(self, spec: str, stop: threading.Event) -> None:
        shown = [0.0]

        def on_bytes(done: int, total: int) -> None:
            now = time.monotonic()
            if now - shown[0] >= 0.2 or done >= total:  # a few updates a second
                shown[0] = now
                share = f"{done / total:.0%} of {mib(total)}" if total else mib(done)
                self.post_message(self.HubStatus(f"pulling {spec}: {share} (x stops)"))

        try:
            pulled = self.service.pull_model(spec, on_bytes=on_bytes, cancel=stop)
        except Exception as exc:
            self.post_message(self.HubStatus(f"[red]{escape(_one_line(exc))}[/red]"))
            raise
        self.post_message(
            self.HubStatus(
                f"registered [b]{pulled.alias}[/b] ({pulled.quant}): {pulled.reason}. Try it in the Playground."
            )
        )
        self.load_catalog()

    def on_models_screen_hub_status(self, message: HubStatus) -> None:
        self.query_one("#hub-status", Static).update(message.text)

    def action_discover(self) -> None:
        self.post_message(self.HubStatus("looking in the HF cache, LM Studio's and Ollama's models..."))
        self.discover()

    @work(thread=True, exclusive=True, group="discover", exit_on_error=False, description="discover")
    def discover(self) -> None:
        rows = self.service.discover_models()
        new = [r["alias"] for r in rows if r["status"] == "registered"]
        text = (
            f"discovered {len(rows)} GGUF file(s); registered {', '.join(new) if new else 'none new'}"
            if rows
            else "no GGUF in the HF cache, LM Studio's or Ollama's models"
        )
        self.post_message(self.HubStatus(text))
        self.load_catalog()


def _one_line(exc: BaseException) -> str:
    """An error as the status line shows it: the message and what to do (WorkbenchError)."""
    one_line = getattr(exc, "one_line", None)
    return one_line() if callable(one_line) else f"{type(exc).__name__}: {exc}"


def mib(count: int | None) -> str:
    return "-" if count is None else f"{count / 1024**2:,.0f} MiB"
