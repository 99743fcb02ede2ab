"""Where chunks live and how they are found: the embedded server, region routing, schema and
row-level security, storage, search and confidence.

Beside the pipeline stages, not above them: nothing here imports :mod:`pipelines`. Search takes
the query encoder and the audit's redaction as arguments.
"""
