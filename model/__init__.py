"""The multiview-video diffusion model.

attention.py  the attention kernel dispatch and the one attention layer
dit.py        MultiViewVideoDiT: the transformer over views x frames
text.py       TextEncoder: prompts -> token states from a local transformers encoder
diffusion.py  flow matching: tasks, conditioning masks, noise, the training loss
pipeline.py   MultiViewVideoPipeline: prompt (+ image or video) -> views x frames and cameras
presets.py    tiny / cpu-small / base as data
"""
