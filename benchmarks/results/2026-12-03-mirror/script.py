"""Video-to-4D: does the mirrored given view, placed at the antipodal camera, help? (orthographic silhouettes from
opposite directions are mirror images; colours are a guess that the far side looks like the near one)."""
import sys, torch, infer
from pathlib import Path
import benchmark as B
from evaluation.paired import variant_means
from evaluation.heldout import Selection, held_out_samples, held_out_cameras
from recon.refine import refine_to_views

data, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pipeline, head = B.load_models(Path("pretrained/zoetrope4d-cpu-small"), torch.device("cpu"))
ho = slice(4, None)

def antipodal(c2w):  # camera at -p looking at the origin, same world up: right and forward flip
    out = c2w.clone(); out[..., :3, 0] *= -1; out[..., :3, 2] *= -1; out[..., :3, 3] *= -1
    return out

orig_cameras, orig_condition = pipeline.cameras, pipeline.condition
def mirror_cameras(*a, **k):
    c2w, K = orig_cameras(*a, **k); c2w = c2w.clone(); c2w[2] = antipodal(c2w[0]); return c2w, K
def mirror_condition(*a, **k):
    cond, given = orig_condition(*a, **k); cond, given = cond.clone(), given.clone()
    cond[0, 2] = cond[0, 0].flip(-1); given[0, 2] = given[0, 0]; return cond, given

def head_on(images, c2w, K):
    with torch.no_grad():
        return head(images[None], c2w[None], K[None])  # [1, F, N]
rows = []
for sample in held_out_samples(Selection(data, 4, n, per)):
    gen, shipped = B.feed_forward(pipeline, head, sample, "video", 4, 0, 20, refine_steps=None)
    cams = held_out_cameras(sample, 4)
    im, c2w, K = gen.images.clone(), gen.c2w.clone(), gen.K
    im[2] = im[0].flip(-1); c2w[2] = antipodal(c2w[0])
    fit0 = lambda g, im=im, c2w=c2w: refine_to_views(g, im[None, :1], c2w[None, :1], K[None, :1], 50, progress=False)
    fit02 = lambda g: refine_to_views(g, im[None, 0::2], c2w[None, 0::2], K[None, 0::2], 50, progress=False)
    variants = {"shipped": shipped, "replace": fit0(head_on(im, c2w, K)), "replace_fit2": fit02(head_on(im, c2w, K)),
                "pair_only": fit0(head_on(im[0::2], c2w[0::2], K[0::2]))}
    pipeline.cameras, pipeline.condition = mirror_cameras, mirror_condition
    gen2, cond = B.feed_forward(pipeline, head, sample, "video", 4, 0, 20, refine_steps=None)
    pipeline.cameras, pipeline.condition = orig_cameras, orig_condition
    variants["diffusion"] = cond
    row = {k: B.held_out_scores(g, *cams, sample, ho)[0] for k, g in variants.items()}
    row["empty"] = B.scores(torch.ones_like(sample["images"][:, ho, :, :3]), B.composite(sample["images"][:, ho], 1.0))
    rows.append(row)
    torch.save({"shipped": gen.images, "diffusion": gen2.images}, f"runs/mirror/{sample['key'][0]}.pt")
    print(sample["key"][0], " ".join(f"{k}:{x['psnr']:.2f}/{x['ssim']:.3f}" for k, x in row.items()), flush=True)
for k, (m, better) in variant_means(rows, "shipped").items():
    print(k, {q: round(x, 3) for q, x in m.items()}, f"better than shipped on {better} of {len(rows)}")
