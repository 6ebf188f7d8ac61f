"""`models search` and `models pull` through huggingface_hub's real client, against a Hub on
loopback (tests/hub_server.py) serving the packaged GGUFs, and a Q8_0 made from SmolLM2 with
llama.cpp's own quantize, as repos."""

from __future__ import annotations

import json
import tomllib

import pytest

from tests.conftest import run_cli
from tests.hub_server import TOKEN, Hub, Repo, sha256

SMOL = "loopback/SmolLM2-135M-Instruct-GGUF"


@pytest.fixture(scope="module")
def q8(fetched_models, tmp_path_factory):
    from local_models.quant_lab import quantize  # llama.cpp's own, its log kept off the output

    out = tmp_path_factory.mktemp("quants") / "SmolLM2-135M-Instruct.Q8_0.gguf"
    return quantize(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf", out, "Q8_0")


@pytest.fixture(scope="module")
def parts(fetched_models, tmp_path_factory):
    """SmolLM2 split in two, as llama.cpp's gguf-split names and keys the parts."""
    from tests.gguf_split import split

    return split(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path_factory.mktemp("split"), 150)


@pytest.fixture
def hub(fetched_models, q8, parts, tmp_path):
    smol = fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    minilm = fetched_models / "all-MiniLM-L6-v2"
    (tmp_path / "README.md").write_text("# notes\n")
    repos = [
        Repo(
            SMOL,
            {"SmolLM2-135M-Instruct.Q4_1.gguf": smol, "SmolLM2-135M-Instruct.Q8_0.gguf": q8},
            downloads=900,
        ),
        Repo(
            "loopback/gemma-3-270m-it-GGUF",
            {"gemma-3-270m-it-Q4_K_M.gguf": fetched_models / "gemma-3-270m-q4_k_m.gguf"},
            gated=True,
        ),
        Repo("loopback/broken-GGUF", {"broken.Q4_1.gguf": smol}, wrong_sha={"broken.Q4_1.gguf"}),
        Repo("loopback/cut-GGUF", {"cut.Q4_1.gguf": smol}, cut_once={"cut.Q4_1.gguf"}),
        Repo("loopback/split-GGUF", {p.name: p for p in parts}),
        Repo("loopback/notes", {"README.md": tmp_path / "README.md"}),
        Repo(
            "loopback/all-MiniLM-L6-v2",
            {str(p.relative_to(minilm)): p for p in minilm.rglob("*") if p.is_file()},
        ),
    ]
    with Hub(repos) as server:
        yield server


def _env(hub, **extra):
    return {"HF_ENDPOINT": hub.url, "HF_TOKEN": "", "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def _catalog(workspace) -> dict:
    return tomllib.loads(workspace.config_path.read_text()).get("models", {})


def test_search_lists_gguf_repos_most_downloaded_first(workspace, hub):
    done = run_cli("models", "search", "GGUF", "--json", env=_env(hub), check=True)
    repos = [r["repo"] for r in json.loads(done.stdout)]
    assert repos[0] == SMOL and "loopback/notes" not in repos
    text = run_cli("models", "search", "gemma", env=_env(hub), check=True).stdout
    assert "loopback/gemma-3-270m-it-GGUF" in text and "gated" in text


def test_pull_by_fit_takes_the_largest_quant_that_fits_checks_it_and_registers_it(workspace, hub, q8):
    done = run_cli("models", "pull", SMOL, env=_env(hub), check=True, timeout=300)
    assert "Q8_0: the largest quant whose weights and KV cache fit" in done.stderr, done.stderr
    entry = _catalog(workspace)["smollm2-135m-instruct-q8_0"]
    assert entry["quant"] == "Q8_0" and entry["sha256"] == sha256(q8) and entry["license"] == "apache-2.0"
    assert (
        entry["source"] == f"hf://{SMOL}/SmolLM2-135M-Instruct.Q8_0.gguf" and entry["chat_template"] is True
    )
    assert sha256(workspace.root / entry["path"]) == sha256(q8)
    assert hub.gets.count("SmolLM2-135M-Instruct.Q8_0.gguf") == 1 and hub.redirects >= 1  # via the CDN
    answer = run_cli(
        "ask", "-m", "smollm2-135m-instruct-q8_0", "-t", "0", "--max-tokens", "4", "Hi", env=_env(hub)
    )
    assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr
    # Pulled again: nothing downloaded, nothing registered twice.
    again = run_cli("models", "pull", SMOL, env=_env(hub), check=True, timeout=300)
    assert "registered smollm2-135m-instruct-q8_0" in again.stdout
    assert hub.gets.count("SmolLM2-135M-Instruct.Q8_0.gguf") == 1


def test_pull_by_quant_and_a_context_that_does_not_fit(workspace, hub):
    done = run_cli(
        "models", "pull", f"{SMOL}:q4_1", "--alias", "small", env=_env(hub), check=True, timeout=300
    )
    assert "registered small" in done.stdout and _catalog(workspace)["small"]["quant"] == "Q4_1"
    # A KV cache of 8M tokens is about 180 GiB for SmolLM2: more than any machine here has free.
    refused = run_cli("models", "pull", f"{SMOL}:Q8_0", "--ctx", "8388608", env=_env(hub))
    assert refused.returncode != 0 and "does not fit" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    none_fits = run_cli("models", "pull", SMOL, "--ctx", "8388608", env=_env(hub))
    assert none_fits.returncode != 0 and "no quant of" in none_fits.stderr
    forced = run_cli(
        "models", "pull", f"{SMOL}:Q8_0", "--ctx", "8388608", "--force", env=_env(hub), timeout=300
    )
    assert forced.returncode == 0, forced.stderr


def test_a_cut_download_resumes_where_it_stopped(workspace, hub):
    done = run_cli("models", "pull", "loopback/cut-GGUF", env=_env(hub), timeout=300)
    if done.returncode != 0:  # the client gave up on the cut: pulling again resumes
        assert "pull again to resume" in done.stderr, done.stderr
        done = run_cli("models", "pull", "loopback/cut-GGUF", env=_env(hub), check=True, timeout=300)
    resumed = [r for r in hub.ranges if r.startswith("bytes=") and not r.startswith("bytes=0-")]
    assert resumed, hub.ranges  # the second transfer asked for the rest only
    path = workspace.root / _catalog(workspace)["cut-q4_1"]["path"]
    assert sha256(path) == sha256(hub.repos["loopback/cut-GGUF"].files["cut.Q4_1.gguf"])


def test_bad_pulls_say_what_to_do_and_register_nothing(workspace, hub):
    cases = {
        ("loopback/missing-GGUF",): "no repo loopback/missing-GGUF",
        ("loopback/notes",): "holds no GGUF",
        (f"{SMOL}:Q3_K_S",): "choose one of: Q8_0, Q4_1",
        ("not-a-repo",): "is not a repo name",
        ("loopback/gemma-3-270m-it-GGUF",): "is gated",
        ("loopback/broken-GGUF",): "does not match the Hub's sha256",
    }
    for args, message in cases.items():
        done = run_cli("models", "pull", *args, env=_env(hub), timeout=300)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert _catalog(workspace) == {}
    assert not list((workspace.models_dir / "loopback--broken-GGUF").glob("*.gguf"))
    gated = run_cli(
        "models", "pull", "loopback/gemma-3-270m-it-GGUF", env=_env(hub, HF_TOKEN=TOKEN), timeout=300
    )
    assert gated.returncode == 0, gated.stderr
    offline = run_cli("--offline", "models", "pull", SMOL, env=_env(hub))
    assert offline.returncode != 0 and "offline mode is on" in offline.stderr
    assert run_cli("--offline", "models", "search", "x", env=_env(hub)).returncode != 0


def test_discover_registers_what_the_hf_cache_lm_studio_and_ollama_hold_once_each(
    workspace, fetched_models, q8, tmp_path
):
    import shutil

    smol = fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    smol_sha, q8_sha = sha256(smol), sha256(q8)
    # The Hugging Face cache, as huggingface_hub lays it out.
    repo = tmp_path / "hf/hub/models--loopback--SmolLM2-135M-Instruct-GGUF"
    (repo / "blobs").mkdir(parents=True)
    shutil.copy(smol, repo / "blobs" / smol_sha)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "SmolLM2-135M-Instruct.Q4_1.gguf").symlink_to(f"../../blobs/{smol_sha}")
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text("a" * 40)
    # LM Studio: the same SmolLM2 file again (listed once), and Gemma.
    lms = tmp_path / "lmstudio"
    (lms / "loopback/SmolLM2-135M-Instruct-GGUF").mkdir(parents=True)
    shutil.copy(smol, lms / "loopback/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf")
    (lms / "google/gemma-3-270m-it-GGUF").mkdir(parents=True)
    (lms / "google/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf").symlink_to(
        fetched_models / "gemma-3-270m-q4_k_m.gguf"
    )
    # Ollama: a manifest naming its GGUF blob by sha256, and one whose blob is not a GGUF.
    ollama = tmp_path / "ollama"
    (ollama / "blobs").mkdir(parents=True)
    shutil.copy(q8, ollama / "blobs" / f"sha256-{q8_sha}")
    (ollama / "blobs" / f"sha256-{'b' * 64}").write_text("a template, not weights")
    library = ollama / "manifests/registry.ollama.ai/library"
    for name, tag, digest in (("smollm2", "135m-q8", q8_sha), ("notes", "latest", "b" * 64)):
        (library / name).mkdir(parents=True)
        layers = [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": 1}
        ]
        (library / name / tag).write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    env = {
        "HOME": str(tmp_path / "home"),
        "HF_HUB_CACHE": str(tmp_path / "hf/hub"),
        "LMSTUDIO_MODELS": str(lms),
        "OLLAMA_MODELS": str(ollama),
    }

    listed = json.loads(run_cli("models", "discover", "--dry-run", "--json", env=env, check=True).stdout)
    assert {(r["store"], r["name"], r["status"]) for r in listed} == {
        ("huggingface", f"{SMOL}/SmolLM2-135M-Instruct.Q4_1.gguf", "found"),
        ("lmstudio", "google/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf", "found"),
        ("ollama", "smollm2:135m-q8", "found"),
    }
    assert _catalog(workspace) == {}
    done = run_cli("models", "discover", env=env, check=True)
    catalog = _catalog(workspace)
    assert set(catalog) == {"smollm2-135m-instruct.q4_1", "gemma-3-270m-it-q4_k_m", "smollm2-135m-q8"}, (
        done.stdout
    )
    assert catalog["smollm2-135m-q8"]["path"] == str(ollama / "blobs" / f"sha256-{q8_sha}")  # in place
    assert catalog["smollm2-135m-q8"]["sha256"] == q8_sha
    answer = run_cli("ask", "-m", "smollm2-135m-q8", "-t", "0", "--max-tokens", "4", "Hi", env=env)
    assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr
    again = json.loads(run_cli("models", "discover", "--json", env=env, check=True).stdout)
    assert {r["status"] for r in again} == {"already registered"}


def test_the_models_screen_searches_shows_fit_badges_pulls_and_discovers(
    workspace, hub, monkeypatch, tmp_path
):
    from textual.widgets import DataTable, Input

    from tests.test_tui import cells, run, settle, text_of
    from tui.app import WorkbenchApp
    from workbench.services import Service

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    for name in ("HF_HUB_CACHE", "LMSTUDIO_MODELS", "OLLAMA_MODELS"):
        monkeypatch.setenv(name, str(tmp_path / "empty" / name))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    service = Service(workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("8")
            await settle(app, pilot)
            app.screen.query_one("#hub-query", Input).focus()
            await pilot.press(*"SmolLM2", "enter")
            await settle(app, pilot)
            repos = app.screen.query_one("#hub", DataTable)
            assert [cells(repos, i)[0] for i in range(repos.row_count)] == [SMOL]
            await pilot.press("enter")  # the repo's quants, with a fit badge each
            await settle(app, pilot)
            quants = app.screen.query_one("#hub-quants", DataTable)
            rows = {cells(quants, i)[0]: cells(quants, i) for i in range(quants.row_count)}
            assert rows["Q8_0"][3] == "fits in RAM" and rows["Q8_0"][4] == "<- pulled by fit"
            assert rows["Q4_1"][4] == ""
            await pilot.press("down")  # Q4_1 instead of the one that fits best
            await pilot.press("p")
            await settle(app, pilot)
            assert "registered smollm2-135m-instruct-q4_1 (Q4_1)" in text_of(app, "#hub-status")
            table = app.screen.query_one("#models", DataTable)
            assert "smollm2-135m-instruct-q4_1" in [cells(table, i)[0] for i in range(table.row_count)]
            # A pull that fails says so where the progress was, not only in a toast.
            service.set_offline(True)
            await pilot.press("p")
            await settle(app, pilot)
            assert "offline mode is on" in text_of(app, "#hub-status")
            await pilot.press("d")
            await settle(app, pilot)
            assert "no GGUF in the HF cache" in text_of(app, "#hub-status")

    run(scenario())


def test_an_embedding_model_pulls_as_a_folder_and_serves_ingest(workspace, hub, tmp_path):
    done = run_cli(
        "models",
        "pull",
        "loopback/all-MiniLM-L6-v2",
        "--kind",
        "embedding",
        "--alias",
        "mini",
        env=_env(hub),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    entry = _catalog(workspace)["mini"]
    assert entry["kind"] == "embedding" and entry["source"] == "hf://loopback/all-MiniLM-L6-v2"
    folder = workspace.root / entry["path"]
    assert (folder / "model.safetensors").is_file() and (folder / "1_Pooling/config.json").is_file()
    assert not (folder / "README.md").exists()  # only what sentence-transformers loads
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees.\n")
    ingest = run_cli("ingest", str(corpus), "-c", "tea", "--model", "mini", env=_env(hub), timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    hits = json.loads(
        run_cli("search", "-c", "tea", "steeping temperature", "--json", env=_env(hub), check=True).stdout
    )
    assert "80 degrees" in hits[0]["text"]
    refused = run_cli(
        "models",
        "pull",
        "loopback/all-MiniLM-L6-v2",
        "--kind",
        "reranker",
        "--alias",
        "r",
        env=_env(hub),
        timeout=300,
    )
    assert refused.returncode != 0 and "registered already, as mini (embedding)" in refused.stderr


def test_a_split_gguf_is_pulled_whole_and_loads_from_its_first_part(workspace, hub, parts):
    assert len(parts) == 2
    done = run_cli("models", "pull", "loopback/split-GGUF", env=_env(hub), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Q4_1, 94 MiB in 2 file(s)" in done.stderr, done.stderr
    entry = _catalog(workspace)["split-q4_1"]
    assert entry["path"].endswith("-00001-of-00002.gguf")
    for part in parts:
        assert sha256(workspace.models_dir / "loopback--split-GGUF" / part.name) == sha256(part)
    plan = json.loads(run_cli("models", "plan", "split-q4_1", "--json", env=_env(hub), check=True).stdout)
    assert plan["weights_bytes"] == sum(p.stat().st_size for p in parts)  # every part counted
    answer = run_cli("ask", "-m", "split-q4_1", "-t", "0", "--max-tokens", "4", "Hi", env=_env(hub))
    assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr
    (workspace.models_dir / "loopback--split-GGUF" / parts[1].name).unlink()
    missing = run_cli("models", "plan", "split-q4_1", env=_env(hub))
    assert missing.returncode != 0 and "missing: " + parts[1].name in missing.stderr


def test_a_disk_too_small_is_refused_before_the_download(workspace, hub, monkeypatch):
    """A full disk cannot be had here: the free space the planner reads is made small."""
    import shutil as real_shutil

    from workbench.core.errors import ModelFetchError
    from workbench.services import Service

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    usage = real_shutil.disk_usage(workspace.root)
    monkeypatch.setattr("local_models.hub.shutil.disk_usage", lambda path: usage._replace(free=10 * 1024**2))
    service = Service(workspace.root)
    with pytest.raises(ModelFetchError, match="not enough disk for .*: 138 MiB to download, 10 MiB free"):
        service.pull_model(SMOL)
    assert "SmolLM2-135M-Instruct.Q8_0.gguf" not in hub.gets  # only a header was read, by range
    assert all(r.startswith("bytes=0-") for r in hub.ranges) and _catalog(workspace) == {}


def test_a_stopped_pull_keeps_its_bytes_and_the_next_one_resumes(workspace, hub, monkeypatch):
    import threading

    from workbench.core.errors import ModelFetchError
    from workbench.services import Service

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    service = Service(workspace.root)
    stop, seen = threading.Event(), []

    def on_bytes(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 8 * 1024**2:
            stop.set()  # as the Models screen's x does

    with pytest.raises(ModelFetchError, match="stopped"):
        service.pull_model(f"{SMOL}:Q4_1", on_bytes=on_bytes, cancel=stop)
    assert seen and seen[-1][1] == 98362432 and _catalog(workspace) == {}
    pulled = service.pull_model(f"{SMOL}:Q4_1", on_bytes=lambda done, total: None)
    assert pulled.alias == "smollm2-135m-instruct-q4_1"
    resumed = [r for r in hub.ranges if r.startswith("bytes=") and not r.startswith("bytes=0-")]
    assert resumed, hub.ranges  # the second transfer asked only for what the first did not get
    assert sha256(pulled.path) == sha256(hub.repos[SMOL].files["SmolLM2-135M-Instruct.Q4_1.gguf"])
