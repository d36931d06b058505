"""RSR adapters: own safetensors file + JSON config; exact round trips; clear refusals."""

import json

import pytest
import torch
from diffusers import SD3Transformer2DModel
from safetensors.torch import load_file

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.files import write_manifest
from thinkpix.integrations import load_rsr, save_rsr
from thinkpix.integrations.adapters import CONFIG, WEIGHTS, read_adapter_config

torch.set_num_threads(1)

TINY = dict(sample_size=8, patch_size=2, in_channels=4, num_layers=3, attention_head_dim=8, num_attention_heads=4,
            joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=16, out_channels=4,
            pos_embed_max_size=16, dual_attention_layers=(0,), qk_norm="rms_norm")
CFG = RSRConfig(layers=[0, 2], num_experts=3, latent_steps=2, rank=4, gate="mlp")


def make(seed=0, **over):
    torch.manual_seed(seed)
    return SD3Transformer2DModel(**dict(TINY, **over)).eval()


def inputs():
    g = torch.Generator().manual_seed(1)
    return dict(hidden_states=torch.randn(2, 4, 8, 8, generator=g), encoder_hidden_states=torch.randn(2, 5, 32, generator=g),
                pooled_projections=torch.randn(2, 16, generator=g), timestep=torch.tensor([3.0, 700.0]), return_dict=False)


def run(model):
    with torch.no_grad():
        return model(**inputs())[0]


@pytest.fixture
def trained(tmp_path):
    """A transformer with a non-trivial adapter, its output, and the adapter saved to disk."""
    model = make()
    rsr = attach_rsr(model, CFG)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in rsr.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    out = run(model)
    path = save_rsr(model, tmp_path / "adapter")
    return model, out, path


def test_save_writes_safetensors_json_and_a_model_card_only(trained):
    model, _, path = trained
    assert sorted(p.name for p in path.iterdir()) == sorted([CONFIG, WEIGHTS, "README.md", "checksums.json"])
    cfg, record = read_adapter_config(path)
    assert cfg == CFG
    assert record["backbone"]["num_blocks"] == 3 and set(record["layers"]) == {"0", "2"}
    assert record["num_parameters"] == model.rsr.num_parameters()
    assert (path / WEIGHTS).read_bytes()[:1] != b"\x80"  # not a pickle


def test_load_into_fresh_transformer_is_exact(trained):
    model, out, path = trained
    fresh = make()
    rsr = load_rsr(fresh, path)
    assert torch.equal(run(fresh), out)
    for k, v in model.rsr.state_dict().items():
        assert torch.equal(rsr.state_dict()[k], v)
    assert all(not p.requires_grad for n, p in fresh.named_parameters() if not n.startswith("rsr."))


def test_load_into_attached_transformer_and_save_load_detach_round_trip(trained, tmp_path):
    model, out, path = trained
    fresh = make()
    base = run(fresh)
    attach_rsr(fresh, CFG.replace(latent_steps=5))  # inference depth may differ
    load_rsr(fresh, path)
    fresh.rsr.set_latent_steps(2)
    assert torch.equal(run(fresh), out)
    again = save_rsr(fresh.rsr, tmp_path / "again")
    a, b = load_file(again / WEIGHTS), load_file(path / WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    detach_rsr(fresh)
    assert torch.equal(run(fresh), base)
    rsr = load_rsr(fresh, again / WEIGHTS)  # the weights file's path works too
    assert rsr.latent_steps == 5  # attached with the saved config: its depth, until set otherwise
    rsr.set_latent_steps(2)
    assert torch.equal(run(fresh), out)


def test_shared_expert_pool_round_trip(tmp_path):
    model = make()
    rsr = attach_rsr(model, CFG.replace(shared_experts=True))
    assert list(rsr.experts.keys()) == ["shared"]
    with torch.no_grad():
        rsr.experts["shared"].B.normal_(0, 0.3)
    out = run(model)
    fresh = make()
    load_rsr(fresh, save_rsr(model, tmp_path / "a"))
    assert torch.equal(run(fresh), out)


def test_refuses_config_that_does_not_match_the_attached_rsr(trained):
    _, _, path = trained
    fresh = make()
    attach_rsr(fresh, CFG.replace(num_experts=2))
    with pytest.raises(ThinkpixError, match="num_experts: saved=3 attached=2"):
        load_rsr(fresh, path)


@pytest.mark.parametrize("over,match", [(dict(num_layers=4), "num_blocks"),
                                        (dict(attention_head_dim=4), "widths"),
                                        (dict(caption_projection_dim=16, attention_head_dim=4), "widths")])
def test_refuses_other_transformers(trained, over, match):
    _, _, path = trained
    other = make(**over)
    with pytest.raises(ThinkpixError, match=match):
        load_rsr(other, path)
    assert not hasattr(other, "rsr")


def test_refuses_corrupted_files(trained):
    _, _, path = trained
    w = path / WEIGHTS
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit-pattern in the tensor data
    w.write_bytes(bytes(data))
    with pytest.raises(ThinkpixError, match="checksum mismatch"):
        load_rsr(make(), path)
    w.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(ThinkpixError, match="checksum mismatch"):
        load_rsr(make(), path)
    (path / CONFIG).write_text("{not json")
    with pytest.raises(ThinkpixError, match="checksum mismatch"):
        load_rsr(make(), path)
    (path / CONFIG).unlink()
    with pytest.raises(ThinkpixError, match="not an RSR adapter"):
        load_rsr(make(), path)


def test_refuses_tensors_that_do_not_fit_the_config_and_leaves_no_rsr_behind(trained):
    _, _, path = trained
    record = json.loads((path / CONFIG).read_text())
    record["config"]["rank"] = 8  # consistent checksums (resealed), inconsistent shapes
    (path / CONFIG).write_text(json.dumps(record))
    write_manifest(path)
    fresh = make()
    with pytest.raises(ThinkpixError, match="do not fit"):
        load_rsr(fresh, path)
    assert not hasattr(fresh, "rsr")
    record["config"]["gate"] = "attention"
    (path / CONFIG).write_text(json.dumps(record))
    write_manifest(path)
    with pytest.raises(ThinkpixError, match="invalid RSR config"):
        load_rsr(fresh, path)
