"""Part of the test tree that mirrors the package (tests/README.md)."""
