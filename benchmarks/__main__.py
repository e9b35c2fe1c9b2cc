"""`python -m benchmarks <command>` (see `benchmarks.cli`)."""

from benchmarks.cli import app

app(prog_name="python -m benchmarks")
