# HTTP benchmark harness (http_bench.py): its helper programs.
