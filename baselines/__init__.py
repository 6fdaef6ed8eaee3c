"""Baselines the feed-forward model is compared against (benchmark.py compare).

sds.py   score distillation (SDS) of 4D Gaussians with the package's own multiview-video model as the prior: what
         every recipe shares, and the home-made recipe (canonical Gaussians plus per-frame offsets)
dg4d.py  DreamGaussian4D's two-stage recipe (static Gaussians, then a deformation field) on the same prior
"""
