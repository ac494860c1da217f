"""relance — an accounts-receivable dunning pipeline on Prefect and DuckDB."""

__version__ = "0.1.0"
