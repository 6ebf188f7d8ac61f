"""Model catalog, llama.cpp and cloud backends, routing and costs."""
