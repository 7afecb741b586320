"""The benchmark behind `make bench`: bench/run.py and its naive baseline."""
