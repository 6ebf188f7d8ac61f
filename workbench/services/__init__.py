"""The services: the one layer the app, the CLI and the server call. It combines the packages
below it (local_models, indexes, agents, evals) and hands back plain types."""

from workbench.services.facade import Service, init_workspace

__all__ = ["Service", "init_workspace"]
