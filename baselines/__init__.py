"""Baselines the feed-forward model is compared against (benchmark.py compare).

sds.py  score distillation (SDS) of 4D Gaussians with the package's own multiview-video model as the prior
"""
