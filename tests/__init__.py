"""The test suite. A package so that `tests.helpers` is importable from the repository root (pyproject.toml
puts the root on sys.path for pytest)."""
