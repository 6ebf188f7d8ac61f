"""Loaders, chunking, embeddings, LanceDB collections and retrieval (issue #4)."""
