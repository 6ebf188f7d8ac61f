"""Query embedding without torch: a BERT sentence-transformers model (MiniLM and its kind: mean
pooling, normalized) run in NumPy from its own safetensors weights and tokenizer.json.

Why: importing torch and sentence-transformers costs 4-10 s on this machine, more than a whole
search; a query is one short text, for which NumPy's forward pass takes milliseconds. Ingest
(thousands of chunks, batched) keeps the real model. The vectors equal sentence-transformers'
to 1e-5 (tests/test_retrieval.py). Models this cannot run (not BERT, other pooling) fall back
to sentence-transformers.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

__all__ = ["QueryEncoder", "query_encoder"]


class Unsupported(Exception):
    """This model is not one the NumPy encoder runs: use sentence-transformers."""


class QueryEncoder:
    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        pooling_dir = next((m["path"] for m in modules if m["type"].endswith("Pooling")), None)
        pooling = json.loads((path / pooling_dir / "config.json").read_text()) if pooling_dir else {}
        normalize = any(m["type"].endswith("Normalize") for m in modules)
        if (
            config.get("model_type") != "bert"
            or config.get("hidden_act") != "gelu"
            or config.get("position_embedding_type", "absolute") != "absolute"
            or not pooling.get("pooling_mode_mean_tokens")
            or any(
                v
                for k, v in pooling.items()
                if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
            )
            or not normalize
            or not (path / "model.safetensors").exists()
        ):
            raise Unsupported(str(path))
        self.weights = {
            k.removeprefix("bert."): v for k, v in load_file(str(path / "model.safetensors")).items()
        }
        # Dense layers' weights transposed once, contiguous (x @ W.T on the view is slower).
        self.dense = {
            k.removesuffix(".weight"): np.ascontiguousarray(v.T)
            for k, v in self.weights.items()
            if k.endswith(".weight") and v.ndim == 2 and not k.startswith("embeddings.")
        }
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config.get("layer_norm_eps", 1e-12)
        settings = path / "sentence_bert_config.json"
        self.max_tokens = (
            json.loads(settings.read_text()).get("max_seq_length", 512) if settings.exists() else 512
        )
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.weights[f"{name}.weight"] + self.weights[
            f"{name}.bias"
        ]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.dense[name] + self.weights[f"{name}.bias"]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one text at a time (queries are few and short)."""
        w = self.weights
        out = []
        for text in texts:
            ids = np.array(self.tokenizer.encode(text).ids)
            x = (
                w["embeddings.word_embeddings.weight"][ids]
                + w["embeddings.position_embeddings.weight"][: len(ids)]
                + w["embeddings.token_type_embeddings.weight"][0]
            )
            x = self._norm(x, "embeddings.LayerNorm")
            size = x.shape[-1] // self.heads
            for layer in range(self.layers):
                name = f"encoder.layer.{layer}"
                q, k, v = (
                    self._dense(x, f"{name}.attention.self.{part}")
                    .reshape(len(ids), self.heads, size)
                    .transpose(1, 0, 2)
                    for part in ("query", "key", "value")
                )
                scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
                scores = np.exp(scores - scores.max(-1, keepdims=True))
                context = (scores / scores.sum(-1, keepdims=True)) @ v
                context = context.transpose(1, 0, 2).reshape(len(ids), -1)
                x = self._norm(
                    x + self._dense(context, f"{name}.attention.output.dense"),
                    f"{name}.attention.output.LayerNorm",
                )
                hidden = self._dense(x, f"{name}.intermediate.dense")
                hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.sqrt(2.0)))  # exact GELU, as BERT's
                x = self._norm(x + self._dense(hidden, f"{name}.output.dense"), f"{name}.output.LayerNorm")
            pooled = x.mean(0)
            out.append(pooled / max(np.linalg.norm(pooled), 1e-12))
        return np.asarray(out, dtype=np.float32)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz and Stegun 7.1.26), below float32's resolution of the
    values it meets here; scipy.special's would cost a cold search 0.12 s of imports."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


_CACHE: dict[str, QueryEncoder | None] = {}
_LOCK = threading.Lock()


def query_encoder(path: Path) -> QueryEncoder | None:
    """The NumPy encoder for the model folder, loaded once per process; None when the model is
    not one it runs (then use sentence-transformers)."""
    key = str(path.resolve())
    with _LOCK:
        if key not in _CACHE:
            try:
                _CACHE[key] = QueryEncoder(path)
            except (Unsupported, OSError, KeyError, ValueError):
                _CACHE[key] = None
        return _CACHE[key]
