"""Real peers the tests and benchmarks start and stop themselves."""
