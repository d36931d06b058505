"""RSR on diffusers pipelines (SD3, SD3.5-style, FLUX, DiT) saved in diffusers' folder format: the base
interface, per-call latent steps, base identity, save_pretrained, and the CLI on a 20-image imagefolder."""

import inspect
import json
import warnings

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image
from safetensors import safe_open
from tiny_pipelines import imagefolder, save_pipeline

from thinkpix import RSRConfig, attach_rsr, load_rsr
from thinkpix.cli import main
from thinkpix.errors import ThinkpixError
from thinkpix.integrations.base_identity import base_identity
from thinkpix.models.pipeline_base import load_base

KINDS = ["sd3", "sd35", "flux", "dit"]
PROMPTS = {"sd3": ["a red bench", "two cats"], "flux": ["a red bench", "two cats"], "dit": ["bench", "red circle"]}
PROMPTS["sd35"] = PROMPTS["sd3"]
RSR = "layers=0,1,experts=2,latent_steps=2,rank=4"


@pytest.fixture(scope="session")
def pipes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipes")
    return {kind: save_pipeline(kind, root / kind) for kind in KINDS}


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    return imagefolder(tmp_path_factory.mktemp("data") / "imagefolder", n=20)


def fresh(folder):
    pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call(pipe, kind, **extra):
    """Two images of the pipeline, fixed noise, as floats in [0, 1]."""
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    if kind == "dit":
        return pipe(class_labels=[2, 0], num_inference_steps=2, generator=gens, output_type="np", **extra).images
    return pipe(PROMPTS[kind], height=32, width=32, num_inference_steps=2, guidance_scale=2.0, generator=gens,
                output_type="np", max_sequence_length=16, **extra).images


def randomize(rsr, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for e in rsr.experts.values():
            e.B.normal_(0, 0.3, generator=g)


# ----- per-call latent steps, T = 0 exact, for every pipeline ---------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_latent_steps_per_call_and_t0_is_the_plain_pipeline(pipes, kind, caplog):
    pipe = fresh(pipes[kind])
    plain = call(pipe, kind)
    rsr = attach_rsr(pipe.transformer, RSRConfig(layers=[0, 1], num_experts=2, latent_steps=2, rank=4))
    randomize(rsr)
    for proc in {type(m.processor) for m in pipe.transformer.modules() if hasattr(m, "set_processor")}:
        if proc.__module__.startswith("thinkpix"):  # diffusers passes only kwargs the signature names
            assert "latent_steps" in inspect.signature(proc.__call__).parameters
    if kind == "dit":  # DiTPipeline has no attention kwargs: the transformer takes cross_attention_kwargs
        x = dict(hidden_states=torch.randn(1, 4, 8, 8), timestep=torch.tensor([500]), class_labels=torch.tensor([1]))
        with torch.no_grad():
            base_out = pipe.transformer(**x, cross_attention_kwargs={"latent_steps": 0}).sample
            t2 = pipe.transformer(**x, cross_attention_kwargs={"latent_steps": 2}).sample
            rsr.set_latent_steps(0)
            ref = pipe.transformer(**x).sample
        assert torch.equal(base_out, ref) and not torch.equal(t2, ref)
        rsr.set_latent_steps(0)
        assert np.array_equal(call(pipe, kind), plain)
        return
    with caplog.at_level("WARNING"):
        t0 = call(pipe, kind, joint_attention_kwargs={"latent_steps": 0})
        t2 = call(pipe, kind, joint_attention_kwargs={"latent_steps": 2})
    assert np.array_equal(t0, plain)  # the base, bit for bit
    assert np.abs(t2 - plain).mean() > 1e-5
    assert rsr.latent_steps == 2  # per call only: the module's setting is unchanged
    assert not [r for r in caplog.records if "latent_steps" in r.getMessage()]  # no "unexpected kwarg" warning
    assert np.array_equal(call(pipe, kind, joint_attention_kwargs={"latent_steps": 2}), t2)  # deterministic


def test_bases_share_one_interface_and_train(pipes):
    """encode_condition / encode_images / loss / generate on each origin; the loss reaches every RSR tensor."""
    for kind in KINDS:
        base = load_base(str(pipes[kind]), "cpu", "fp32")
        rsr = attach_rsr(base.transformer, RSRConfig(layers=[0, 1], num_experts=2, latent_steps=2, rank=4))
        randomize(rsr)
        cond = base.encode_condition(PROMPTS[kind][:1] + [""])
        x0 = base.encode_images(torch.rand(2, 3, 32, 32) * 2 - 1)  # (2, C, 8, 8)
        loss = base.loss(x0, cond, torch.randn_like(x0), torch.tensor([0.2, 0.8]), "logit_normal")
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for n, p in rsr.named_parameters() if "experts" in n), kind
        images = base.generate(PROMPTS[kind], seed=0, steps=2, guidance=2.0, resolution=32)
        assert images.shape == (2, 32, 32, 3) and images.dtype == torch.uint8
        one = base.generate(PROMPTS[kind][1:], seed=1, steps=2, guidance=2.0, resolution=32)
        # image i depends on seed + i only; batched matmuls may round a float differently across batch sizes,
        # which can move a pixel by one uint8 level (seen: 1 of 3,072 values on the DiT pipeline)
        diff = (one[0].int() - images[1].int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, (kind, diff.max(), (diff > 0).sum())



def test_bundled_base_through_the_same_path(tmp_path):
    """--pretrained also takes a bundled model: same trainer, data stream, validation and adapter."""
    argv = ["finetune", "--pretrained", "shapes-base", "--rsr", "layers=2,3,experts=2,latent_steps=2,rank=2", "--output_dir",
            str(tmp_path), "--max_train_steps", "1", "--train_batch_size", "2", "--validation_prompt", "a red circle",
            "--num_validation_images", "2", "--validation_inference_steps", "2", "--weighting_scheme", "none"]
    assert main(argv) == 0
    assert (tmp_path / "validation" / "step_0000001.png").is_file()
    record = json.loads((tmp_path / "adapter" / "rsr_config.json").read_text())
    assert record["base"]["name"].endswith("shapes-base")


def test_a_flags_run_trains_the_adapter_as_every_fine_tune_does(tmp_path):
    """The adapter half is shared (`FinetuneObjective`): gates and experts in their own groups, and an RSR spec's
    temperature annealed by optimiser step, whatever the accumulation."""
    argv = ["finetune", "--pretrained", "shapes-base", "--rsr",
            "layers=2,3,experts=2,latent_steps=2,rank=2,tau=5,temperature_end=1", "--output_dir", str(tmp_path),
            "--max_train_steps", "3", "--train_batch_size", "2", "--gradient_accumulation_steps", "2",
            "--learning_rate", "1e-3", "--gate_learning_rate", "2e-3", "--log_every", "1"]
    assert main(argv) == 0
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["temperature"] for m in metrics] == pytest.approx([5.0, 5 ** 0.5, 1.0])  # steps 0, 1, 2 of 3
    assert all(m["lr_gates"] == pytest.approx(2 * m["lr_experts"]) for m in metrics)


# ----- save_pretrained with RSR attached --------------------------------------------------------------
def test_save_pretrained_leaves_the_adapter_out_with_a_warning(pipes, tmp_path):
    pipe = fresh(pipes["sd3"])
    plain = call(pipe, "sd3")
    rsr = attach_rsr(pipe.transformer, RSRConfig(layers=[0, 1], num_experts=2, latent_steps=2, rank=4))
    randomize(rsr)
    with_rsr = call(pipe, "sd3")
    with pytest.warns(UserWarning, match="LEFT OUT"):
        pipe.save_pretrained(tmp_path / "saved")
    with safe_open(str(tmp_path / "saved" / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("rsr.")]  # nothing half-saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reloading is clean: no unexpected-keys warning
        reloaded = fresh(tmp_path / "saved")
    assert np.array_equal(call(reloaded, "sd3"), plain)  # the base, exactly
    assert np.array_equal(call(pipe, "sd3"), with_rsr)  # RSR still attached and working after the save


# ----- the practitioner path through the CLI ----------------------------------------------------------
def finetune(pipe_dir, data, out, *extra):
    return main(["finetune", "--pretrained", str(pipe_dir), "--data", str(data), "--resolution", "32",
                 "--rsr", RSR, "--max_train_steps", "4", "--train_batch_size", "2", "--learning_rate", "1e-2",
                 "--gate_learning_rate", "3e-2", "--lr_scheduler", "cosine", "--lr_warmup_steps", "1",
                 "--checkpointing_steps", "2", "--checkpoints_total_limit", "1", "--max_sequence_length", "16",
                 "--validation_prompt", "a red bench", "--num_validation_images", "2", "--validation_steps", "2",
                 "--log_every", "1", "--output_dir", str(out), *extra])


def adapter_tensors(folder):
    with safe_open(str(folder / "rsr_adapter.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.fixture(scope="module")
def trained(pipes, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "sd3"
    assert finetune(pipes["sd3"], images, out) == 0
    return out


def test_finetune_writes_adapter_with_base_identity_card_and_validation(trained, pipes):
    record = json.loads((trained / "adapter" / "rsr_config.json").read_text())
    fresh_transformer = fresh(pipes["sd3"]).transformer
    assert record["base"]["name"] == str(pipes["sd3"].resolve())
    assert record["base"]["config_sha256"] == base_identity(fresh_transformer)["config_sha256"]
    card = (trained / "adapter" / "README.md").read_text()
    assert "library_name: thinkpix" in card and str(pipes["sd3"].resolve()) in card and "(20 images)" in card
    assert sorted(p.name for p in (trained / "validation").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    metrics = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert metrics[1]["lr_gates"] == pytest.approx(3 * metrics[1]["lr_experts"])  # the separate gate rate
    assert len(list((trained / "checkpoints").glob("step_*"))) == 1  # --checkpoints_total_limit 1
    tensors = adapter_tensors(trained / "adapter")
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert any(t.abs().sum() > 0 for k, t in tensors.items() if k.endswith(".B"))  # the experts trained


def test_kill_and_resume_is_exact(trained, pipes, images, tmp_path, monkeypatch):
    from thinkpix.training.loop import Trainer

    real_step = Trainer.train_step

    def killed_after_two(self):
        if self.step == 2:
            raise RuntimeError("killed")
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", killed_after_two)
    with pytest.raises(RuntimeError, match="killed"):
        finetune(pipes["sd3"], images, tmp_path / "b")
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert finetune(pipes["sd3"], images, tmp_path / "b") == 0  # a fresh process resumes at step 2
    a, b = adapter_tensors(trained / "adapter"), adapter_tensors(tmp_path / "b" / "adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_trained_adapter_in_a_fresh_pipeline(trained, pipes):
    pipe = fresh(pipes["sd3"])
    plain = call(pipe, "sd3")
    load_rsr(pipe.transformer, trained / "adapter")
    assert np.array_equal(call(pipe, "sd3", joint_attention_kwargs={"latent_steps": 0}), plain)
    assert np.abs(call(pipe, "sd3", joint_attention_kwargs={"latent_steps": 2}) - plain).mean() > 1e-6


def test_wrong_base_is_refused_unless_forced(trained, pipes, tmp_path):
    other = fresh(pipes["sd35"]).transformer  # same widths and block count, another architecture
    with pytest.raises(ThinkpixError, match="trained on base .*dual_attention_layers.*force"):
        load_rsr(other, trained / "adapter")
    assert not hasattr(other, "rsr")
    with pytest.warns(UserWarning, match="forced"):
        load_rsr(other, trained / "adapter", force_base=True)
    argv = ["generate", "a red bench", "--pretrained", str(pipes["sd35"]), "--adapter", str(trained / "adapter"),
            "--steps", "2", "-n", "1", "--resolution", "32", "--out", str(tmp_path / "g.png")]
    assert main(argv) == 2


def test_generate_with_adapter_and_think_steps(trained, pipes, tmp_path):
    argv = ["generate", "a red bench", "--pretrained", str(pipes["sd3"]), "--adapter", str(trained / "adapter"),
            "--latent_steps", "2", "--steps", "2", "-n", "2", "--resolution", "32", "--device", "cpu",
            "--out", str(tmp_path / "grid.png")]
    assert main(argv) == 0 and (tmp_path / "grid.png").is_file()


def test_generate_writes_a_pipelines_images_at_their_own_size(pipes, tmp_path):
    """A small image is shown at about 128 px (4x at 32 px); one of 128 px or more at its own size."""
    common = ["generate", "a red bench", "--pretrained", str(pipes["sd3"]), "--steps", "1", "-n", "1",
              "--device", "cpu"]
    for resolution, side in ((32, 128), (128, 128)):
        out = tmp_path / f"r{resolution}.png"
        assert main([*common, "--resolution", str(resolution), "--out", str(out)]) == 0
        width, height = Image.open(out).size
        assert side <= width < side + 8 and side <= height < side + 8, (resolution, width)  # + the grid's padding
    assert main([*common, "--resolution", "128", "--upscale", "2", "--out", str(tmp_path / "x2.png")]) == 0
    assert Image.open(tmp_path / "x2.png").size[0] >= 256  # an explicit --upscale still applies


OFFICIAL = [  # lines of GenEval's prompts/evaluation_metadata.jsonl (COCO classes)
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
    {"tag": "color_attr", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a photo of a red car"},
    {"tag": "position", "include": [{"class": "dog", "count": 1}, {"class": "toaster", "count": 1,
                                                                   "position": ["left of", 0]}],
     "prompt": "a photo of a toaster left of a dog"},
]


def test_sample_writes_genevals_layout_for_official_metadata(pipes, tmp_path, capsys):
    prompts = tmp_path / "evaluation_metadata.jsonl"
    prompts.write_text("".join(json.dumps(m) + "\n" for m in OFFICIAL))
    out = tmp_path / "geneval"
    argv = ["sample", "--pretrained", str(pipes["flux"]), "--prompts", str(prompts), "--out", str(out),
            "--images_per_prompt", "2", "--steps", "2", "--resolution", "32"]
    assert main(argv) == 0
    # GenEval's evaluate_images.py skips entries that are not digit-named folders (our sample_run.json)
    assert sorted(p.name for p in out.iterdir()) == ["00000", "00001", "00002", "sample_run.json"]
    for i, meta in enumerate(OFFICIAL):
        folder = out / f"{i:05d}"
        assert json.loads((folder / "metadata.jsonl").read_text()) == meta
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["00000.png", "00001.png"]
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 2
    assert "shapes-world folders only" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sd35", "flux", "dit"])
def test_finetune_cli_on_every_pipeline(pipes, images, tmp_path, kind):
    extra = ["--caption_column", "label"] if kind == "dit" else []
    argv = ["finetune", "--pretrained", str(pipes[kind]), "--data", str(images), "--resolution", "32", "--rsr", RSR,
            "--max_train_steps", "2", "--train_batch_size", "2", "--max_sequence_length", "16",
            "--checkpointing_steps", "2", "--cache_latents", "--cache_text_embeddings", "--output_dir", str(tmp_path),
            *extra]
    assert main(argv) == 0
    record = json.loads((tmp_path / "adapter" / "rsr_config.json").read_text())
    assert record["backbone"]["name"] == ("sd3" if kind == "sd35" else kind)


def test_bf16_autocast_on_cpu_keeps_adapters_fp32(pipes, images, tmp_path):
    argv = ["finetune", "--pretrained", str(pipes["sd3"]), "--data", str(images), "--resolution", "32", "--rsr", RSR,
            "--max_train_steps", "2", "--train_batch_size", "2", "--max_sequence_length", "16", "--learning_rate",
            "1e-2", "--mixed_precision", "bf16", "--gradient_accumulation_steps", "2", "--gradient_checkpointing",
            "--device", "cpu", "--output_dir", str(tmp_path)]
    assert main(argv) == 0
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(m["loss"]) for m in metrics)
    tensors = adapter_tensors(tmp_path / "adapter")
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert any(t.abs().sum() > 0 for k, t in tensors.items() if k.endswith(".B"))


def test_bad_inputs_are_one_line_errors(pipes, images, tmp_path, capsys):
    common = ["finetune", "--pretrained", str(pipes["sd3"]), "--rsr", RSR, "--output_dir", str(tmp_path)]
    assert main([*common, "--data", str(images), "--caption_column", "caption"]) == 2
    assert "no column 'caption'" in capsys.readouterr().err
    assert main([*common, "--data", str(images), "--resolution", "30"]) == 2
    assert main([*common, "--data", str(images), "--weighting_scheme", "bogus"]) == 2
    assert main([*common, "--data", str(tmp_path / "nowhere")]) == 2
    assert main(["finetune", "--pretrained", str(tmp_path / "nowhere" / "x"), "--rsr", RSR]) == 2
    assert main(["finetune", "--pretrained", "someone/not-cached-model", "--rsr", RSR]) == 2
    assert "local Hugging Face cache" in capsys.readouterr().err


def test_config_file_of_flag_names(pipes, images, tmp_path):
    """`finetune --config FILE` with a `pretrained` key: the flags as YAML; the shipped paper config parses."""
    from pathlib import Path

    from thinkpix.cli import build_parser
    from thinkpix.commands.finetune_flags import build

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"pretrained: {pipes['sd3']}\ndata: {images}\nresolution: 32\nrsr: {RSR}\nmax_train_steps: 1\n"
                   "train_batch_size: 2\nmax_sequence_length: 16\ncache_text_embeddings: true\n")
    assert main(["finetune", "--config", str(cfg), "--output_dir", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "pipeline_options.json").read_text())["cache_text_embeddings"] is True
    paper = Path(__file__).resolve().parents[1] / "configs" / "sd3_medium_rsr.yaml"
    train_cfg, opts = build(build_parser().parse_args(["finetune", "--config", str(paper), "--max_train_steps", "7"]))
    assert train_cfg.finetune.rsr == "layers=4,8,12,experts=2,latent_steps=2,rank=128,tau=5"
    assert (opts.mixed_precision, opts.resolution, train_cfg.steps) == ("bf16", 1024, 7)  # the command line wins
    cfg.write_text(f"pretrained: {pipes['sd3']}\nlearning_rat: 1\n")
    assert main(["finetune", "--config", str(cfg)]) == 2


@pytest.mark.parametrize("flag, module", [("--use_8bit_adam", "bitsandbytes"), ("--report_to=tensorboard", "tensorboard")])
def test_optional_extras_are_named_when_missing(pipes, tmp_path, capsys, flag, module):
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    argv = ["finetune", "--pretrained", str(pipes["sd3"]), "--rsr", RSR, "--resolution", "32", "--max_train_steps",
            "1", "--output_dir", str(tmp_path), flag]
    assert main(argv) == 2
    assert "pip install 'thinkpix[" in capsys.readouterr().err
