"""Tests of the benchmark's own arithmetic (``pytest bench/tests``): no Redis, no worker."""
