"""Benchmarks of kakao-dispatch; each module writes its figures to bench/results/."""
