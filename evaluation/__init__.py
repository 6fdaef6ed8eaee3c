"""Evaluation of generated 4D assets: metrics and the optional learned scores (see benchmark.py)."""
