"""Model cards as the Hub reads them: library_name, pipeline_tag, base_model (the hub id where known) and the
base's license carried over from its own card."""

from thinkpix.integrations.card import card_text, hub_id, lora_card_text

RSR = {"layers": [0], "num_experts": 2, "top_k": 1, "latent_steps": 2, "rank": 4, "temperature": 5.0}


def header(card: str) -> dict:
    import yaml

    return yaml.safe_load(card.split("---", 2)[1])


def test_hub_ids_are_recognised_and_local_folders_are_not(tmp_path):
    assert hub_id("stabilityai/stable-diffusion-3-medium-diffusers") == "stabilityai/stable-diffusion-3-medium-diffusers"
    snapshot = tmp_path / "hub" / "models--black-forest-labs--FLUX.1-dev" / "snapshots" / ("0" * 40)
    assert hub_id(str(snapshot)) == "black-forest-labs/FLUX.1-dev"
    (tmp_path / "owner" / "mine").mkdir(parents=True)
    assert hub_id(str(tmp_path / "owner" / "mine")) is None and hub_id("shapes-base") is None


def test_the_card_carries_the_bases_license_and_the_hubs_fields(tmp_path):
    base = tmp_path / "models--someone--tiny-sd3" / "snapshots" / "rev"
    base.mkdir(parents=True)
    (base / "README.md").write_text("---\nlicense: other\nlicense_name: tiny-community\nlicense_link: LICENSE.md\n"
                                    "tags:\n- x\n---\n# a base\n")
    record = {"config": RSR, "backbone": {"name": "sd3"}, "num_parameters": 10,
              "base": {"name": str(base), "class": "SD3Transformer2DModel"}}
    meta = header(card_text(record))
    assert meta["base_model"] == "someone/tiny-sd3" and meta["license"] == "other"
    assert meta["license_name"] == "tiny-community" and meta["license_link"] == "LICENSE.md"
    assert meta["pipeline_tag"] == "text-to-image" and meta["library_name"] == "thinkpix"
    lora = {"layers": [0], "rank": 2, "alpha": 2, "num_parameters": 8,
            "base": {"name": str(base), "class": "DiTTransformer2DModel"}}
    meta = header(lora_card_text(lora))
    assert meta["library_name"] == "diffusers" and meta["license"] == "other"
    assert meta["pipeline_tag"] == "unconditional-image-generation"


def test_a_base_without_a_card_gives_no_license(tmp_path):
    record = {"config": RSR, "backbone": {"name": "mmdit"}, "num_parameters": 10,
              "base": {"name": str(tmp_path), "class": "SD3Transformer2DModel"}}
    meta = header(card_text(record))
    assert "license" not in meta and "base_model" not in meta and meta["pipeline_tag"] == "text-to-image"
