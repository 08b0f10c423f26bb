"""Serving: the HTTP API (FastAPI), dynamic batching, metrics and the web page."""
