"""Experiments on live traffic: A/B tests and team-draft interleaving between ranking
configurations, assignment by a salted hash, exposure logging, online metrics per arm with
always-valid statistics, guardrails that stop a bad arm, and a ramp to full traffic."""
