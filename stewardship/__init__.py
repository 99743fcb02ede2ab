"""The steward's view: a static report and the records of processing, from the config and the indexes."""
