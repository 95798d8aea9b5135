"""Example workflows shipped with rayflow (used by the README, the CLI and the tests)."""
