"""Broken workbench.toml files are fixtures; each asserts the one error a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core.config import WorkbenchConfig, edit_config, load_config
from workbench.core.errors import ConfigError

DATA = Path(__file__).parent / "data" / "config"

CASES = {
    "syntax.toml": "TOML syntax error",
    "unknown_key.toml": "tracing.sample_rate: unknown key",
    "wrong_type.toml": "offline: Input should be a valid boolean",
    "rate_too_high.toml": "tracing.payload_sample_rate: Input should be less than or equal to 1",
    "stored_key.toml": "cloud.openai.api_key: keys are never stored",
    "bad_env_name.toml": "cloud.openai.api_key_env: Value error, must be the NAME",
    "bad_model_kind.toml": "models.mine.kind: Input should be 'gguf', 'embedding' or 'reranker'",
}


@pytest.mark.parametrize("name,expected", sorted(CASES.items()))
def test_broken_config_names_file_and_key(name, expected):
    path = DATA / name
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.one_line()
    assert str(path) in message
    assert expected in message
    assert "\n" not in message


def test_not_utf8(tmp_path):
    path = tmp_path / "workbench.toml"
    path.write_bytes(b"offline = \xff\xfe")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(path)


def test_missing_file_means_defaults(tmp_path):
    config = load_config(tmp_path / "absent.toml")
    assert config == WorkbenchConfig()
    assert config.tracing.payload_sample_rate == 1.0


def test_full_config_parses():
    config = load_config(DATA / "good.toml")
    assert config.offline is True
    assert config.tracing.payload_sample_rate == 0.25
    assert config.models["mine"].path == "models/mine.gguf"
    endpoint = config.cloud["openai"]
    assert endpoint.api_key_env == "OPENAI_API_KEY"
    assert endpoint.prices["gpt-4o-mini"].output_per_mtok == 0.6


def test_edit_keeps_comments_and_refuses_invalid_result(tmp_path):
    path = tmp_path / "workbench.toml"
    path.write_text("# my comment\noffline = false\n")
    edit_config(path, lambda doc: doc.__setitem__("offline", True))
    assert path.read_text().startswith("# my comment")
    assert load_config(path).offline is True
    before = path.read_text()
    with pytest.raises(ConfigError, match="offline"):
        edit_config(path, lambda doc: doc.__setitem__("offline", "yes please"))
    assert path.read_text() == before


def test_the_readme_config_example_is_valid():
    import re
    import tomllib

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = re.findall(r"```toml\n(.*?)```", readme, re.S)[0]
    config = WorkbenchConfig.model_validate(tomllib.loads(example))
    assert config.router.escalate_to == "openai/gpt-4o-mini" and set(config.cloud) == {
        "openai",
        "claude",
        "vllm",
    }
