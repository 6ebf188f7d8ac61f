"""Property-based tests over every parser a user feeds: whatever the bytes, each gives a clear
error of the workbench's own hierarchy (which the CLI prints as one line), never a traceback."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.checks import parse_spec
from evals.datasets import csv_to_cases, parse_jsonl
from indexes.loaders import LoadedFile, LoadFailure, load_file
from local_models.gguf_info import read_gguf_info
from workbench.core.config import load_config
from workbench.core.errors import ConfigError, EvalError, ModelError, SpecError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)

# Structured fuzz: values that look like specs, with wrong types and names in the right places
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
node_types = st.sampled_from(
    ["retrieve", "generate", "grade", "route", "escalate", "guardrail", "tool", "bogus"]
)
nodes = st.dictionaries(
    st.sampled_from(["a", "b", "c", "end", "x y"]),
    st.fixed_dictionaries(
        {"type": node_types},
        optional={
            "next": st.sampled_from(["a", "b", "c", "end", "zz"]),
            "model": st.text(max_size=8),
            "collection": st.text(max_size=8),
            "prompt": st.fixed_dictionaries({"id": st.text(max_size=4), "template": text}),
            "routes": st.lists(
                st.fixed_dictionaries({"if": text, "goto": st.sampled_from(["a", "b", "end"])}), max_size=3
            ),
            "prompt_from": st.sampled_from(["a", "b"]),
            "check": st.sampled_from(["redact", "injection", "nope"]),
            "tools": st.lists(st.text(max_size=8), max_size=3),
            "block": st.lists(text, max_size=2),
            "k": json_values,
        },
    ),
    max_size=4,
)


@FUZZ
@given(text)
def test_spec_from_any_text(source):
    try:
        parse_spec(source, "fuzz.yaml")
    except SpecError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" for p in exc.problems)


@FUZZ
@given(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["ok", "bad name", ""]),
            "start": st.sampled_from(["a", "b", "zz"]),
            "nodes": nodes,
        },
        optional={"max_steps": json_values},
    )
)
def test_spec_from_spec_like_documents(document):
    try:
        spec = parse_spec(yaml.safe_dump(document), "fuzz.yaml")
    except SpecError as exc:
        assert exc.problems and all(str(p).startswith("fuzz.yaml") for p in exc.problems)
    else:
        assert spec.start in spec.nodes


@FUZZ
@given(st.lists(st.one_of(text, json_values.map(json.dumps)), max_size=6))
def test_jsonl_dataset_from_any_lines(lines):
    try:
        cases = parse_jsonl("\n".join(lines), "fuzz.jsonl")
    except EvalError as exc:
        assert "fuzz.jsonl" in exc.message
    else:
        assert cases and all(c.input.strip() for c in cases) and len({c.id for c in cases}) == len(cases)


@FUZZ
@given(text)
def test_csv_dataset_from_any_text(source):
    try:
        cases = csv_to_cases("id,input,expected\n" + source, "fuzz.csv")
    except EvalError as exc:
        assert "fuzz.csv" in exc.message
    else:
        assert all(c.input.strip() for c in cases)


@FUZZ
@given(st.binary(max_size=400) | text.map(str.encode))
def test_workbench_toml_from_any_bytes(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "workbench.toml"
        path.write_bytes(raw)
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(path) in exc.message


def _gguf_header(version: int, tensors: int, keys: int, tail: bytes) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, keys) + tail


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            _gguf_header,
            st.sampled_from([1, 2, 3, 99]),
            st.integers(0, 2**64 - 1),
            st.integers(0, 2**64 - 1),
            st.binary(max_size=200),
        ),
    )
)
def test_gguf_header_truncated_or_lying(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.gguf"
        path.write_bytes(raw)
        try:
            read_gguf_info(path)
        except ModelError as exc:
            assert str(path) in exc.message


@FUZZ
@given(
    st.sampled_from([".md", ".txt", ".html", ".rst", ".py", ".json", ".jsonl", ".csv", ".pdf"]),
    st.one_of(
        st.binary(max_size=600),
        text.map(lambda t: t.encode("utf-8")),
        text.map(lambda t: t.encode("utf-16")),
        st.just(b"x" * 5000 + b"\n" + b"y" * 20000),
    ),
)
def test_document_of_any_bytes_loads_or_says_why(suffix, raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"doc{suffix}"
        path.write_bytes(raw)
        result = load_file(path, max_bytes=1_000_000)
        assert isinstance(result, LoadedFile | LoadFailure)
        if isinstance(result, LoadFailure):
            assert result.reason
        else:
            assert result.sections and all(s.text and s.start >= 0 for s in result.sections)
