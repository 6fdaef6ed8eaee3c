"""TextEncoder: the offline MiniLM default, any local encoder folder, and a clear error for a missing one."""
import os

import pytest
import torch

from model.text import TextEncoder, default_encoder_path


def test_text_encoder_loads_the_offline_minilm_and_returns_token_states():
    encoder = TextEncoder(max_length=16)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    text = encoder(["a red cube spinning on its corner", ""])
    assert text.states.shape == (2, 16, 384) and text.mask.shape == (2, 16) and text.mask.dtype == torch.bool
    assert text.mask[1].sum() == 2  # the empty prompt is [CLS] [SEP]
    assert text.mask[0].sum() > 2 and torch.isfinite(text.states).all()
    assert encoder.path is None and encoder.dim == 384  # None: the packaged default, a reference that travels
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.train().encoder.training


def test_any_local_encoder_folder_works(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(tmp_path)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(tmp_path)
    encoder = TextEncoder(tmp_path, max_length=8)
    assert encoder(["a dancing robot"]).states.shape == (1, 8, 32) and encoder.path == str(tmp_path)


def test_missing_encoder_path_raises_value_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-encoder"
    with pytest.raises(ValueError, match="no-such-encoder"):
        TextEncoder(missing)
