"""Video-to-4D at held-out views: denoising steps and sampler (shipped: 20, stochastic), seed 0, default refinement."""
import sys, torch
from pathlib import Path
import benchmark as B
from evaluation.paired import variant_means
from evaluation.heldout import Selection, held_out_samples, held_out_cameras
from model.sampling import Sampling

data, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
VARIANTS = {"s20": ("stochastic", 20), "s40": ("stochastic", 40), "ode20": ("ode", 20), "ode40": ("ode", 40)}
models = {s: B.load_models(Path("pretrained/zoetrope4d-cpu-small"), torch.device("cpu"), Sampling(sampler=s))
          for s in ("stochastic", "ode")}
ho = slice(4, None)
rows = []
for sample in held_out_samples(Selection(data, 4, n, per)):
    cams = held_out_cameras(sample, 4)
    row = {}
    for k, (s, steps) in VARIANTS.items():
        _, g = B.feed_forward(*models[s], sample, "video", 4, 0, steps, refine_steps=None)
        row[k] = B.held_out_scores(g, *cams, sample, ho)[0]
    rows.append(row)
    print(sample["key"][0], " ".join(f"{k}:{x['psnr']:.2f}/{x['ssim']:.3f}" for k, x in row.items()), flush=True)
for k, (m, better) in variant_means(rows, "s20", ("psnr", "ssim", "ghosting")).items():
    print(k, {q: round(x, 3) for q, x in m.items()}, f"better than s20 on {better} of {len(rows)}")
