"""How documents become governed chunks: one plain-Python module per stage.

No Dagster and no SQL here: the stages reach an index only through the protocols in
:mod:`pipelines.ports`, which :class:`indexes.store.RegionIndex` satisfies.
"""
