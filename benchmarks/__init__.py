"""Speed and memory measurements of the course (not tests): see benchmarks/README.md."""
