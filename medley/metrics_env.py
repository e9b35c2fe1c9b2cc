"""The one setting prometheus-client reads at import time: kept apart so that the CLI can set
it before anything imports the library (medley/metrics.py explains the multiprocess mode)."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
