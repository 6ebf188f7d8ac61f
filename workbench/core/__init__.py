"""The core: config, workspace, errors, names, redaction, hardware probes and tracing. It
imports nothing of ours above it (import-linter checks), so every layer can build on it."""
