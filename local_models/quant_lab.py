"""What a quant costs: make one with llama.cpp's own quantize, and measure it against another.

``quantize`` calls llama_model_quantize, the C API llama-cpp-python exposes (llama-quantize's
own code). ``compare`` scores a text as llama.cpp's ``llama-perplexity --kl-divergence`` does:
the tokens cut into chunks of ``n_ctx`` (the first token of each replaced by BOS where the
vocabulary adds one), each chunk decoded alone, and only its second half scored, so every scored
token has at least n_ctx/2 tokens before it. Per model: perplexity (e to the mean negative
log-likelihood of the next token); against the base: the mean KL divergence of the model's
next-token distribution from the base's, and how often both put the same token first; with the
file size and the tokens per second of the scoring, the quality x size x speed table.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.core.errors import ModelError

__all__ = ["QUANT_TYPES", "quantize", "compare", "Scores"]

QUANT_TYPES = (
    "Q2_K",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_0",
    "Q4_1",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_0",
    "Q5_1",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
    "IQ4_NL",
    "IQ4_XS",
    "F16",
    "BF16",
)


def quantize(source: Path, target: Path, kind: str, threads: int | None = None) -> Path:
    """Write ``source`` quantized as ``kind`` to ``target`` (through a temporary name)."""
    import llama_cpp

    from local_models.llama_backend import _route_llama_logs

    _route_llama_logs()  # its per-tensor lines go to logging, not over the user's terminal
    if kind not in QUANT_TYPES:
        raise ModelError(f"unknown quant type {kind}", f"use one of {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.allow_requantize = True  # from an already quantized file: the caller says so
    params.nthread = threads or 0
    partial = target.with_name(f".{target.name}.partial")
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if code != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"llama.cpp could not quantize {source} to {kind} (code {code})",
            "check the source is a GGUF model",
        )
    partial.replace(target)
    return target


@dataclass
class Scores:
    name: str
    size_bytes: int
    perplexity: float
    kl_divergence: float | None  # mean, from the base; None for the base itself
    top_token_agreement: float | None
    tokens_per_s: float
    scored_tokens: int


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class _Scorer:
    def __init__(self, path: Path, n_ctx: int, threads: int | None) -> None:
        import llama_cpp

        from local_models.llama_backend import _route_llama_logs

        _route_llama_logs()
        self.path = path
        self.llm = llama_cpp.Llama(
            str(path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            logits_all=True,
            n_threads=threads or os.cpu_count(),  # llama-cpp-python's default is half the cores
            verbose=False,
        )
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        self.seconds = 0.0

    def log_probs(self, chunk: list[int], first: int) -> np.ndarray:
        """Next-token log-probabilities at positions first..n_ctx-2 of a chunk, decoded alone."""
        tokens = list(chunk)
        if self.bos is not None:
            tokens[0] = self.bos
        self.llm.reset()
        start = time.perf_counter()
        self.llm.eval(tokens)
        self.seconds += time.perf_counter() - start
        return _log_softmax(np.asarray(self.llm.scores[first : len(tokens) - 1]))

    def close(self) -> None:
        self.llm.close()


def compare(
    base: Path,
    others: list[tuple[str, Path]],
    text: str,
    n_ctx: int = 512,
    threads: int | None = None,
    base_name: str = "base",
) -> list[Scores]:
    """Perplexity of ``base`` and each of ``others`` over ``text``, and each one's KL divergence
    from ``base`` and top-token agreement with it, chunk by chunk."""
    reference = _Scorer(base, n_ctx, threads)
    try:
        tokens = reference.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        chunks = [tokens[i : i + n_ctx] for i in range(0, len(tokens) - n_ctx + 1, n_ctx)]
        if not chunks:
            raise ModelError(
                f"the text is {len(tokens)} tokens, shorter than one {n_ctx}-token chunk",
                "give a longer text (a few thousand words), or a smaller --ctx",
            )
        first = n_ctx // 2
        scorers = [_Scorer(path, n_ctx, threads) for _, path in others]
        base_nll, nll = 0.0, [0.0] * len(others)
        kl, same = [0.0] * len(others), [0] * len(others)
        count = 0
        for chunk in chunks:
            targets = np.asarray(chunk[first + 1 :])
            rows = np.arange(len(targets))
            ours = reference.log_probs(chunk, first)
            base_nll -= float(ours[rows, targets].sum())
            p = np.exp(ours)
            top = ours.argmax(-1)
            for i, scorer in enumerate(scorers):
                theirs = scorer.log_probs(chunk, first)
                nll[i] -= float(theirs[rows, targets].sum())
                kl[i] += float((p * (ours - theirs)).sum())
                same[i] += int((top == theirs.argmax(-1)).sum())
            count += len(targets)
        speed = len(chunks) * n_ctx
        results = [
            Scores(
                base_name,
                base.stat().st_size,
                float(np.exp(base_nll / count)),
                None,
                None,
                speed / max(reference.seconds, 1e-9),
                count,
            )
        ]
        for i, ((name, path), scorer) in enumerate(zip(others, scorers)):
            results.append(
                Scores(
                    name,
                    path.stat().st_size,
                    float(np.exp(nll[i] / count)),
                    max(0.0, kl[i] / count),  # >= 0; a rounding error below 0 is 0
                    same[i] / count,
                    speed / max(scorer.seconds, 1e-9),
                    count,
                )
            )
            scorer.close()
        return results
    finally:
        reference.close()
