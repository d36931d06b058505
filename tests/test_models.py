import pytest
import torch

from thinkpix.models.t2i import TextToImage
from thinkpix.models.text import MiniLMEncoder, build_text_encoder
from thinkpix.sampling import generate_images


def test_minilm_is_frozen_and_deterministic_even_in_train_mode():
    enc = build_text_encoder("minilm")
    enc.train()  # the trainer puts every module in train mode: dropout must stay off
    prompts = ["a photo of a red circle", "a photo of two blue squares"]
    a, pa = enc.encoder(prompts)
    b, pb = enc.encoder(prompts)
    assert torch.equal(a, b) and torch.equal(pa, pb)
    assert not any(p.requires_grad for p in enc.parameters())
    # a prompt's encoding does not depend on its batch-mates (fixed padding)
    alone, _ = enc.encoder(prompts[:1])
    torch.testing.assert_close(alone[0], a[0], rtol=1e-5, atol=1e-5)
    assert a.shape == (2, MiniLMEncoder(max_tokens=24).max_tokens, 384)


def test_word_encoder_maps_unknown_words_and_pads():
    enc = build_text_encoder("words", dim=16)
    ids = enc.ids(["a photo of a zebra", ""])
    assert ids.shape == (2, enc.max_tokens)
    assert ids[0, 4].item() == 1  # <unk>
    assert (ids[1] == 0).all()
    tokens, pooled = enc(["a photo of a red circle", ""])
    assert tokens.shape == (2, enc.max_tokens, 16) and pooled.shape == (2, 16)


def _tiny_model():
    torch.manual_seed(0)
    return TextToImage.create("tiny", "pixel", "words").eval()


def test_sampling_is_deterministic_per_seed_and_batch_independent():
    model = _tiny_model()
    prompts = ["a photo of a red circle", "a photo of two squares", "a photo of a triangle", "a photo of a circle"]
    full = generate_images(model, prompts, seed=3, steps=4, guidance=2.0)
    again = generate_images(model, prompts, seed=3, steps=4, guidance=2.0)
    assert torch.equal(full, again)
    # image i of a call with seed s is the image of seed s + i drawn alone (batch of 1)
    alone = generate_images(model, prompts[2:3], seed=5, steps=4, guidance=2.0)
    assert (alone[0].int() - full[2].int()).abs().max() <= 1  # uint8 rounding of float noise
    # and in a batch of 2 split differently
    pair = generate_images(model, prompts, seed=3, steps=4, guidance=2.0, batch_size=2)
    assert (pair.int() - full.int()).abs().max() <= 1
    other = generate_images(model, prompts, seed=4, steps=4, guidance=2.0)
    assert not torch.equal(other, full)


def test_model_save_load_round_trip(tmp_path):
    model = _tiny_model()
    model.save(tmp_path / "m")
    again = TextToImage.load(tmp_path / "m")
    x = torch.randn(2, *model.latent_shape)
    tokens, pooled = model.encode_text(["a photo of a red circle", ""])
    t = torch.tensor([0.3, 0.9])
    torch.testing.assert_close(again.velocity(x, t, *again.encode_text(["a photo of a red circle", ""])),
                               model.velocity(x, t, tokens, pooled), rtol=0, atol=0)


def test_depth_variants_of_a_named_size():
    from thinkpix.models.registry import size_config

    assert size_config("mmdit", "demo-d3") == {**size_config("mmdit", "demo"), "num_layers": 3}
    for bad in ("demo-d0", "demo-d25", "demo-dx", "huge-d2"):
        with pytest.raises(KeyError, match="unknown size"):
            size_config("mmdit", bad)
    with pytest.raises(KeyError, match="unknown size 'demo-d2' for autoencoder; known: tiny, demo.$"):
        size_config("autoencoder", "demo-d2")
