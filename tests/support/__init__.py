"""Helpers shared by the tests and the benchmarks: where the real data is, tiny models, app and browser drivers,
workspace records, report inputs, the /proc figures of a server and the multi-session load harness.

Benchmarks import them as ``tests.support.*`` when run from the repository root (``python -m benchmarks.X``)."""
