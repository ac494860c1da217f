"""Prefect flows: the dunning business process, read top to bottom."""
