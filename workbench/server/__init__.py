"""`workbench serve`: the workspace's OpenAI-compatible gateway (app.py), and the file that tells
other processes of the workspace that one runs (state.py)."""
