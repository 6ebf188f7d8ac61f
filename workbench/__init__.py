"""Workbench: a local-first AI stack workbench (kernel, service layer and CLI)."""

__version__ = "0.1.0"
