"""The core: errors, dates, policy, settings, URLs, phones, paths, the checkout — what every layer
uses. It imports nothing of relance's other packages (tasks, flows, the CLI): the import-linter
contract in pyproject.toml holds the direction (tests/test_layers.py)."""
