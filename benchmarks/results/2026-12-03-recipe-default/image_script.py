"""Image-to-4D only, as `benchmark.py eval` scores it (ring view 0's first frame given, refined as infer.py --image
refines): PSNR/SSIM and ghosting at the held-out views, for sampling overrides given as k=v arguments."""
import sys, json, torch
from pathlib import Path
import benchmark as B
from model.sampling import Sampling
from evaluation.heldout import Selection, held_out_samples, held_out_cameras

data, n, per, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
over = {k: float(v) for k, v in (a.split("=") for a in sys.argv[6:])}
pipeline, head = B.load_models(Path("pretrained/zoetrope4d-cpu-small"), torch.device("cpu"), Sampling(**over))
rows = {}
for sample in held_out_samples(Selection(data, 4, n, per)):
    _, image4d = B.feed_forward(pipeline, head, sample, "image", 4, seed, 20, refine_steps=None)
    row = B.held_out_scores(image4d, *held_out_cameras(sample, 4), sample, slice(4, None))[0]
    rows[sample["key"][0]] = row
    print(sample["key"][0], {k: round(v, 3) for k, v in row.items()}, flush=True)
Path(out).write_text(json.dumps(rows, indent=1))
print("mean", {k: round(sum(r[k] for r in rows.values()) / len(rows), 4) for k in next(iter(rows.values()))})
