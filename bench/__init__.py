"""Benchmarks of the service: ingest, scrape, alert latency, evaluation, memory, Pushgateway.

Run with `make bench` (`python -m bench`); `python -m bench --help` lists the options. Every
scenario starts the service as its own process on a temporary database and drives it from
separate load processes over 127.0.0.1. See bench/README.md for what each one measures.
"""
