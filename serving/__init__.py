"""Serving agents: the retrieval API over HTTP. Reads the indexes as the reader role, never writes schema."""
