"""Image-to-4D: refine the head's Gaussians against the given image (view 0, frame 0) for N steps? Same generation."""
import sys, torch
from pathlib import Path
import benchmark as B
from evaluation.paired import variant_means
from evaluation.heldout import Selection, held_out_samples, held_out_cameras
from recon.refine import refine_to_views

data, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pipeline, head = B.load_models(Path("pretrained/zoetrope4d-cpu-small"), torch.device("cpu"))
ho = slice(4, None)
STEPS = [int(x) for x in sys.argv[4].split(",")]
rows = []
for sample in held_out_samples(Selection(data, 4, n, per)):
    gen, g = B.feed_forward(pipeline, head, sample, "image", 4, 0, 20, refine_steps=0)
    cams = held_out_cameras(sample, 4)
    im, c2w, K = gen.images[None, :1, :1], gen.c2w[None, :1, :1], gen.K[None, :1]
    variants = {"shipped": g}
    for steps in STEPS:
        variants[f"img{steps}"] = refine_to_views(g, im, c2w, K, steps, progress=False, frames=slice(0, 1))
    row = {k: B.held_out_scores(v, *cams, sample, ho)[0] for k, v in variants.items()}
    rows.append(row)
    print(sample["key"][0], " ".join(f"{k}:{x['psnr']:.2f}/{x['ssim']:.3f}/g{x['ghosting']:.3f}" for k, x in row.items()), flush=True)
for k, (m, better) in variant_means(rows, "shipped", ("psnr", "ssim", "ghosting")).items():
    print(k, {q: round(x, 3) for q, x in m.items()}, f"better than shipped on {better} of {len(rows)}")
