"""Video-to-4D: how much do the generated views help the reconstruction at held-out views?
Same generation (shipped, seed 0); variants of what the head sees / trusts, each refined 50 steps against the video."""
import sys, torch, infer
from pathlib import Path
import benchmark as B
from evaluation.paired import variant_means
from evaluation.heldout import Selection, held_out_samples, held_out_cameras
from recon.refine import refine_to_views

data, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pipeline, head = B.load_models(Path("pretrained/zoetrope4d-cpu-small"), torch.device("cpu"))
ho = slice(4, None)
def head_on(images, c2w, K):
    with torch.no_grad():
        return head(images[None], c2w[None], K[None])  # [1, F, N]
def weighted(g, V, w):  # opacity of the generated views' Gaussians (views 1..) times w
    op = g.opacities.unflatten(-1, (V, -1)).clone(); op[..., 1:, :] *= w
    return type(g)(g.means, g.rotations, g.scales, op.flatten(-2), g.colours)
rows = []
for sample in held_out_samples(Selection(data, 4, n, per)):
    gen, shipped = B.feed_forward(pipeline, head, sample, "video", 4, 0, 20, refine_steps=None)
    cams = held_out_cameras(sample, 4)
    im, c2w, K = gen.images, gen.c2w, gen.K  # [V, F, 3, H, W] ...
    fit = lambda g: refine_to_views(g, im[None, :1], c2w[None, :1], K[None, :1], 50, progress=False)
    full = head_on(im, c2w, K)
    variants = {"shipped": shipped, "front_only": fit(head_on(im[:1], c2w[:1], K[:1])),
                "w0.5": fit(weighted(full, 4, 0.5)), "w0.25": fit(weighted(full, 4, 0.25))}
    row = {k: B.held_out_scores(g, *cams, sample, ho)[0] for k, g in variants.items()}
    row["empty"] = B.scores(torch.ones_like(sample["images"][:, ho, :, :3]), B.composite(sample["images"][:, ho], 1.0))
    rows.append(row)
    print(sample["key"][0], " ".join(f"{k}:{x['psnr']:.2f}/{x['ssim']:.3f}" for k, x in row.items()), flush=True)
for k, (m, better) in variant_means(rows, "shipped").items():
    print(k, {q: round(x, 3) for q, x in m.items()}, f"better than shipped on {better} of {len(rows)}")
