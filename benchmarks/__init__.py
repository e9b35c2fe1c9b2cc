"""Benchmarks: each writes a JSON report and a Markdown view of it."""
