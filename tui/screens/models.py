"""Models: the catalog with what each model is (read from its GGUF header), the fit plan of the
selected one, load/unload in this app, GPU status, cloud endpoints and the offline switch."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from tui.screens.base import BaseScreen
from tui.table import Table


class ModelsScreen(BaseScreen):
    MODE = "models"
    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("l", "load", "Load"),
        Binding("u", "unload", "Unload"),
        Binding("o", "toggle_offline", "Offline on/off"),
    ]

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
        yield Static("[b]Cloud endpoints[/b]", id="cloud-title")
        cloud = Table(id="cloud", cursor_type="row")
        cloud.add_columns("endpoint", "kind", "base url", "models", "key", "usable")
        yield cloud
        yield Static(
            "l load · u unload (in this app; kept warm between chats) · o offline on/off · r refresh. "
            "Fetch the default models with `workbench models fetch`; register any GGUF file or "
            "sentence-transformers folder with `workbench models register PATH`; add cloud "
            "endpoints under [cloud.NAME] in workbench.toml.",
            classes="note",
        )

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load_catalog()

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


def mib(count: int | None) -> str:
    return "-" if count is None else f"{count / 1024**2:,.0f} MiB"
