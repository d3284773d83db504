"""Prefect wiring: the ``ingest`` flow and its tasks."""
