"""The benchmark harness (issue 9): `python -m bench [--quick] [--json PATH]`; never a test."""
