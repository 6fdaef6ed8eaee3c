"""Evaluation of generated 4D assets (see benchmark.py).

metrics.py  image, geometry and cost metrics: PSNR/SSIM (also masked), flicker, ghosting, depth error, seconds, memory
learned.py  CLIP score and LPIPS where their weights are local; FVD never
heldout.py  which held-out clips are scored (spread over assets, clips, then orbits) and at which cameras
plys.py     the naming rule for any method's per-frame .ply files (benchmark.py score)
report.py   results files (command, commit, machine, date, rows), summaries, the crossing with SDS, the plot
"""
