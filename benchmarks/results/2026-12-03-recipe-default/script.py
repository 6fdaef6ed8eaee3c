"""Text-to-4D only, what the loop recipe's rule weighs: silhouette IoU, motion ratio, seam ratio and masked
consistency on held-out clips at the truth's ring cameras, for sampling overrides given as k=v arguments."""
import sys, json, torch
from pathlib import Path
import benchmark as B
from model.sampling import Sampling
from evaluation.heldout import Selection, held_out_samples

data, n, per, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
over = {k: float(v) for k, v in (a.split("=") for a in sys.argv[6:])}
pipeline, head = B.load_models(Path("pretrained/zoetrope4d-cpu-small"), torch.device("cpu"), Sampling(**over))
patch, rows = pipeline.transformer.config.patch_size, {}
for sample in held_out_samples(Selection(data, 4, n, per)):
    truth_ring = sample["images"][0, :4]
    text, text4d = B.feed_forward(pipeline, head, sample, "text", 4, seed, 20, sample["meta"][0].azimuths[0])
    rerendered = B.render_at(text4d, text.c2w[None], text.K[None], sample["images"].shape[-2:])
    row = {"masked": B.masked_consistency(rerendered, text.images[None]), **B.generated_measures(text.images, truth_ring, patch)}
    rows[sample["key"][0]] = row
    print(sample["key"][0], {k: round(v, 3) for k, v in row.items()}, flush=True)
Path(out).write_text(json.dumps(rows, indent=1))
print("mean", {k: round(sum(r[k] for r in rows.values()) / len(rows), 4) for k in next(iter(rows.values()))})
