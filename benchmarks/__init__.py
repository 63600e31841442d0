"""The benchmark harness (W1-W7): ``python -m benchmarks.run --blas-threads 1``; see README.md."""
