"""Fit planner: will this model fit, and how many layers can go to the GPU?

Estimates from the GGUF header, before loading: weights (the tensor data in the file), the KV
cache (f16 K and V for every layer and context position) and llama.cpp's compute buffer, set
against free VRAM (nvidia-smi) and available RAM. Estimates err on the safe side: sliding-window
layers (Gemma 3) are counted as full-context ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from local_models.gguf_info import GGUFInfo

__all__ = ["FitPlan", "plan_fit", "gpu_memory"]

_MARGIN = 256 * 1024**2  # left free on the GPU for the driver and fragmentation
_KV_BYTES = 2  # f16 cache


@dataclass(frozen=True)
class FitPlan:
    model: str
    n_ctx: int
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    layers: int
    gpu_offload: bool
    gpu_free_bytes: int | None
    ram_free_bytes: int | None
    gpu_layers: int  # the largest count that fits (all = layers + 1 with the output layer)
    fits_in_ram: bool

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes

    @property
    def summary(self) -> str:
        if not self.gpu_offload:
            where = "CPU only (llama.cpp has no GPU offload here)"
        elif self.gpu_layers > self.layers:
            where = "all layers on the GPU"
        elif self.gpu_layers == 0:
            where = "CPU (does not fit on the GPU)"
        else:
            where = f"{self.gpu_layers} of {self.layers + 1} layers on the GPU"
        ram = "" if self.fits_in_ram else "; WARNING: more than the available RAM"
        return f"{where}{ram}"


def gpu_memory() -> int | None:
    """Free bytes on the first GPU, from nvidia-smi; None where there is none."""
    from workbench.core.hardware import gpus_raw

    devices = gpus_raw()
    return devices[0][2] if devices else None


def plan_fit(
    info: GGUFInfo, n_ctx: int, gpu_offload: bool, gpu_free: int | None, ram_free: int | None
) -> FitPlan:
    layers = info.block_count or 1
    heads_kv = info.head_count_kv or info.head_count or 1
    head_dim = info.key_length or ((info.embedding_length or 0) // max(info.head_count or 1, 1))
    value_dim = info.value_length or head_dim
    kv_per_layer = n_ctx * heads_kv * (head_dim + value_dim) * _KV_BYTES
    kv = kv_per_layer * layers
    # llama.cpp's compute buffer: activations for one 512-token batch plus the logits row.
    compute = 512 * ((info.embedding_length or 0) * 4 * 4 + (info.vocab_size or 0) * 4)
    weights = info.size_bytes
    per_layer = weights / (layers + 1) + kv_per_layer
    gpu_layers = 0
    if gpu_offload and gpu_free is not None:
        room = gpu_free - _MARGIN - compute
        gpu_layers = max(0, min(layers + 1, int(room // per_layer))) if room > 0 else 0
    return FitPlan(
        model=info.name,
        n_ctx=n_ctx,
        weights_bytes=weights,
        kv_bytes=kv,
        compute_bytes=compute,
        layers=layers,
        gpu_offload=gpu_offload,
        gpu_free_bytes=gpu_free,
        ram_free_bytes=ram_free,
        gpu_layers=gpu_layers,
        fits_in_ram=ram_free is None or weights + kv + compute <= ram_free,
    )
