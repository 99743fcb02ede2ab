"""Fuzzing ingest with malformed files: a corpus generator, a full runner (``make fuzz``) and a slice."""
