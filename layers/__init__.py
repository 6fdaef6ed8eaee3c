"""Layers shared by the diffusion transformer (model/) and the reconstruction head (recon/); imports nothing of ours."""
