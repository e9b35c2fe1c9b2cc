"""Editor tools: fusion profiles, previews, offline evaluation, re-fusion jobs."""
