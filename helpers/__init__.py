"""Helpers for the Rhodes wildfire notebooks: search, chunks, NDVI, masking, cluster,
synthetic data, server.

Each module hides plumbing a learner should not have to type twice; the lesson itself
stays in the notebooks.
"""
