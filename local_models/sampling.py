"""The local sampler's fixed settings, in one place: llama_backend.py samples with them, and the
langgraph export (which copies this file) sends them to the model server, so that a deployed
workflow samples as the workbench does."""

TOP_K = 40
MIN_P = 0.05
REPEAT_PENALTY = 1.0  # none: llama.cpp's server would otherwise apply 1.1
