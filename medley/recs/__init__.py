"""Recommendations: the serving item table, collaborative model, ranking and the sync that keeps
them current."""
