"""Model code: one module per model family behind the interface in `enrich.base`."""
