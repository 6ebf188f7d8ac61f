"""The Textual app. Screens talk only to workbench.services."""
