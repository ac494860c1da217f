"""Where relance finds its files: the checkout's root, with sql/, templates/ and policies/ beside
the Python packages."""

from pathlib import Path

#: The checkout's root: sql/, templates/ and policies/ live beside the Python packages.
ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "sql"
TEMPLATES_DIR = ROOT / "templates"
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"
