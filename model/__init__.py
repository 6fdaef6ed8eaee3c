"""The multiview-video diffusion model.

dit.py        MultiViewVideoDiT: the transformer over views x frames
text.py       TextEncoder: prompts -> token states from a local transformers encoder
diffusion.py  flow matching: tasks, conditioning masks, noise, the training loss
pipeline.py   MultiViewVideoPipeline: prompt (+ image or video) -> views x frames and cameras
sampling.py   PipelineDefaults and Sampling: what a call uses unless told otherwise, and what it asks instead
presets.py    tiny / cpu-small / base as data
"""
