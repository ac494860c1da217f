"""relance — an accounts-receivable dunning pipeline on Prefect and DuckDB."""

from pathlib import Path

__version__ = "0.1.0"

#: The checkout's root: sql/, templates/ and policies/ live beside the Python packages.
ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
TEMPLATES_DIR = ROOT / "templates"
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"
