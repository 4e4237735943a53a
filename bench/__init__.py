"""Benchmarks on the embedded stack (`python -m bench`): throughput as a ratio to a raw
aiokafka loop measured in the same run, latency at fixed offered loads, peak RSS."""
