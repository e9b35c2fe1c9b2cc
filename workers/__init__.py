"""Celery tasks: thin wrappers that take ids, re-fetch state and call `workers.pipeline`."""
