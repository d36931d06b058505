"""The LoRA baseline on par with RSR adapters: it records the base it was trained on and refuses another,
carries a model card that may be edited, and its weights are in diffusers' LoRA (peft) format, so that
`pipe.load_lora_weights(FOLDER)` loads them and changes the pipeline's output exactly as thinkpix's loader."""

import numpy as np
import pytest
import torch

from thinkpix.errors import ThinkpixError
from thinkpix.integrations import lora
from tiny_pipelines import sd3_pipeline


def saved_lora(tmp_path, seed: int = 0):
    """A LoRA on blocks 0 and 1 of the tiny SD3 pipeline, its B tensors given seeded noise (as after training)."""
    pipe = sd3_pipeline(tmp_path / "tok")
    lora.attach_lora(pipe.transformer, [0, 1], rank=2)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pipe.transformer.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    return lora.save_lora(pipe.transformer, tmp_path / "adapter", base_name="tiny-sd3")


def image(pipe) -> np.ndarray:
    return pipe(prompt="a red bench", num_inference_steps=2, height=32, width=32, output_type="np",
                generator=torch.Generator().manual_seed(0)).images[0]


def test_diffusers_load_lora_weights_loads_the_adapter_and_changes_the_output(tmp_path):
    adapter = saved_lora(tmp_path)
    base = image(sd3_pipeline(tmp_path / "tok"))
    by_diffusers = sd3_pipeline(tmp_path / "tok")
    by_diffusers.load_lora_weights(str(adapter))
    by_thinkpix = sd3_pipeline(tmp_path / "tok")
    lora.load_lora(by_thinkpix.transformer, adapter)
    a, b = image(by_diffusers), image(by_thinkpix)
    assert np.abs(a - base).max() > 1e-3  # the adapter was loaded: the output moved
    np.testing.assert_allclose(a, b, atol=1e-5)  # and moved exactly as with thinkpix's own loader


def test_the_base_is_recorded_and_another_base_refused_unless_forced(tmp_path):
    adapter = saved_lora(tmp_path)
    record = lora.read_checked_record(adapter, lora.CONFIG, lora.WEIGHTS, lora.FORMAT, "LoRA adapter", loose=True)
    assert record["base"]["name"] == "tiny-sd3" and len(record["base"]["config_sha256"]) == 64
    other = sd3_pipeline(tmp_path / "tok", sd35=True).transformer  # same widths, another architecture
    with pytest.raises(ThinkpixError, match="trained on base tiny-sd3"):
        lora.load_lora(other, adapter)
    with pytest.warns(UserWarning, match="loaded anyway"):
        lora.load_lora(sd3_pipeline(tmp_path / "tok", sd35=True).transformer, adapter, force_base=True)


def test_a_card_edit_keeps_the_adapter_loadable_a_weights_edit_does_not(tmp_path):
    adapter = saved_lora(tmp_path)
    card = adapter / "README.md"
    assert "load_lora_weights" in card.read_text() and "tiny-sd3" in card.read_text()
    with card.open("a") as f:
        f.write("\nTrained by me, shared on the Hub.\n")
    (adapter / "sample.png").write_bytes(b"not really a png")
    lora.load_lora(sd3_pipeline(tmp_path / "tok").transformer, adapter)
    weights = adapter / lora.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ThinkpixError, match="checksum mismatch"):
        lora.load_lora(sd3_pipeline(tmp_path / "tok").transformer, adapter)
