"""Privacy: users' own controls, erasure and history reset, differentially private analytics.

Modules here import the recommendation store and model, never the serving classes, so the
serving code can call into them without an import cycle.
"""
