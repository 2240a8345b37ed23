"""Text and fact data that methods (calibration) and benchmarks (probes) both read."""
