"""Side-by-side performance benchmarks (not tests). Each module exposes `run() -> list[dict]`."""
