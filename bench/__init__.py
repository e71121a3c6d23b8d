"""Benchmarks: scripts that print their figures and how they were measured, plus the
modules only they use. Run as files (`.venv/bin/python bench/bench_x.py`); each puts this
checkout first on `sys.path`, so `bench.*` and `pinlanding_assets.*` are this checkout's."""
