"""Groundwork: governed ingestion and retrieval for production AI agents."""

__version__ = "0.1.0"
