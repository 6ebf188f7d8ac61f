"""Workflow specs compiled to LangGraph graphs, the node library and export targets (issue #5)."""
