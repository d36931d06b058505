"""Bad input to every command: exit status 2, one line on stderr naming the file, line or option,
no traceback, and nothing written or deleted (the whole sandbox is compared before and after).
Called in-process (`main(argv)`), from inside the sandbox so relative default outputs count."""

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from thinkpix.cli import main
from thinkpix.files import write_manifest
from test_weights_claims import retype_first_tensor

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_pixel.yaml")
GOOD_LINE = json.loads((ROOT / "data" / "eval" / "geneval.jsonl").read_text().splitlines()[0])
DENSE_LINE = json.loads((ROOT / "data" / "eval" / "dense.jsonl").read_text().splitlines()[0])


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming width x height, with no real pixel data (only its header can be read)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def lines(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    box = tmp_path_factory.mktemp("sandbox")
    assert main(["train", TINY, f"out_dir={box / 'run'}", "steps=2", "ckpt_every=1", "batch_size=2"]) == 0
    model = box / "run" / "final"
    assert main(["finetune", "--pretrained", str(model), "--rsr", "layers=0,experts=2,latent_steps=1,rank=1", "--output_dir",
                 str(box / "ft"), "steps=1", "batch_size=2", "ckpt_every=1"]) == 0
    (box / "good.jsonl").write_text(lines(GOOD_LINE))
    (box / "afile.txt").write_text("x")
    (box / "adir").mkdir()
    bad = {
        "non_utf8.jsonl": b'{"tag": "single_object", "prompt": "a \xff\xfe", "include": []}\n',
        "prompt_int.jsonl": lines(dict(GOOD_LINE, prompt=123)),
        "tag_list.jsonl": lines(dict(GOOD_LINE, tag=["a"])),
        "huge_count.jsonl": lines(dict(GOOD_LINE, include=[{"class": "circle", "count": 10**20}])),
        "float_count.jsonl": lines(dict(GOOD_LINE, include=[{"class": "circle", "count": 1e20}])),
        "malformed.jsonl": '{"tag": \n',
        "empty.jsonl": "\n",
        "not_object.jsonl": "[1, 2]\n",
        "include_str.jsonl": lines(dict(GOOD_LINE, include="circle")),
        "exclude_str.jsonl": lines(dict(GOOD_LINE, exclude="circle")),
        "question_id_str.jsonl": lines(dict(DENSE_LINE, questions=[dict(DENSE_LINE["questions"][0], id="1")])),
        "question_deps.jsonl": lines(dict(DENSE_LINE, questions=[dict(DENSE_LINE["questions"][0], dependencies=[[0]])])),
        "questions_str.jsonl": lines(dict(DENSE_LINE, questions="all")),
        "bad_position.jsonl": lines(dict(GOOD_LINE, include=[{"class": "circle", "count": 1, "position": ["near", 0]}])),
        "non_utf8.yaml": b"steps: 3\nout_dir: \xff\n",
        "list.yaml": "- 1\n- 2\n",
        "broken.yaml": "steps: [1,\n",
        "empty.yaml": "",
        "comments.yaml": "# a config whose keys were lost\n\n",
        "truncated.yaml": "model:\n  kind: mmdit\nsteps: 3\nbatch_si",
        "dupe.yaml": "steps: 3\nbatch_size: 2\nsteps: 4\n",
        "bool_steps.yaml": "steps: true\n",
        "null_out.yaml": "out_dir:\nsteps: 2\n",
        "pipe_dupe.yaml": "pretrained: run/final\nrsr: layers=0\npretrained: other\n",
        "pipe_bool.yaml": "pretrained: run/final\nrsr: layers=0\nresolution: true\n",
    }
    for name, content in bad.items():
        (box / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    # model folders: damaged in place of a good one
    for name in ("no_manifest", "pickle", "bad_meta"):
        shutil.copytree(model, box / name)
    (box / "no_manifest" / "checksums.json").unlink()
    (box / "pickle" / "transformer" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04K\x00.")
    meta = json.loads((box / "bad_meta" / "thinkpix.json").read_text())
    (box / "bad_meta" / "thinkpix.json").write_text(json.dumps(dict(meta, canvas="big")))
    write_manifest(box / "bad_meta")  # a crafted folder with valid checksums: its fields are checked too
    shutil.copytree(box / "ft" / "adapter", box / "adapter_edited")
    cfg = box / "adapter_edited" / "rsr_config.json"
    cfg.write_text(cfg.read_text().replace('"temperature": 5.0', '"temperature": 0.5'))
    # evaluation folders
    big = box / "big" / "00000"
    (big / "samples").mkdir(parents=True)
    (big / "metadata.jsonl").write_text(lines(GOOD_LINE))
    (big / "samples" / "0000.png").write_bytes(png_header(12000, 12000))
    assert main(["sample", "--prompts", str(box / "good.jsonl"), "--model", str(model), "--steps", "1",
                 "--images_per_prompt", "2", "--out", str(box / "sampled")]) == 0
    shutil.copytree(box / "sampled", box / "incomplete")
    (box / "incomplete" / "00000" / "samples" / "0001.png").unlink()
    (box / "notdemo" / "images" / "00000").mkdir(parents=True)  # someone's folder: demo must not delete it
    (box / "link.png").symlink_to(box / "afile.txt")  # an output name that is a link to the user's file
    (box / "linked_out").mkdir()  # an output folder holding a link to a folder outside it
    (box / "linked_out" / "00000").symlink_to(box / "adir")
    os.mkfifo(box / "fifo")
    (box / "long_prompt.jsonl").write_text(lines(dict(GOOD_LINE, prompt="a red circle " * 831)))  # 10,803 chars
    (box / "unknown_tag.jsonl").write_text(lines(dict(GOOD_LINE, tag="made_up_task")))
    shutil.copytree(model, box / "tampered")  # F32 -> I32 in the header, resealed
    retype_first_tensor(box / "tampered" / "transformer" / "diffusion_pytorch_model.safetensors")
    write_manifest(box / "tampered")
    shutil.copytree(model, box / "wide_config")  # a config wider than its weights, resealed
    config = box / "wide_config" / "transformer" / "config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), num_attention_heads=64)))
    write_manifest(box / "wide_config")
    (box / "notdemo" / "images" / "00000" / "mine.txt").write_text("keep me")
    return box


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.is_symlink(), p.is_dir(), p.lstat().st_size if p.is_file() else 0,
                                             p.lstat().st_mtime_ns if p.is_file() else 0)
            for p in root.rglob("*")}


M = "run/final"  # the tiny model, relative to the sandbox
G = ["generate", "a red circle", "--model", M, "--steps", "1"]
S = ["sample", "--prompts", "good.jsonl", "--model", M, "--steps", "1", "--out", "s_out"]
T = ["train", TINY, "steps=2", "batch_size=2", "out_dir=t_out"]
F = ["finetune", "--pretrained", M, "--rsr", "layers=0,experts=2,latent_steps=1,rank=1", "--output_dir", "f_out", "steps=1",
     "batch_size=2"]

P = ["finetune", "--pretrained", M, "--rsr", "layers=0,experts=2,latent_steps=1,rank=1", "--output_dir", "p_out",
     "--max_train_steps", "1"]

CASES = [
    # configs: empty, comment-only, truncated, duplicate keys, booleans for numbers, NaN, empty or root out_dir
    (["train", "empty.yaml"], "no config keys"),
    (["train", "comments.yaml"], "no config keys"),
    (["train", "truncated.yaml"], "truncated.yaml"),
    (["train", "dupe.yaml"], "'steps' given twice"),
    (["train", "bool_steps.yaml"], "'steps'"),
    (["train", "null_out.yaml"], "'out_dir'"),
    ([*T, "steps=true"], "'steps'"),
    ([*T, "optim.lr=nan"], "'optim.lr'"),
    ([*T, "out_dir="], "out_dir"),
    ([*T, "out_dir=/"], "root"),
    (["finetune", "--config", "pipe_dupe.yaml"], "'pretrained' given twice"),
    (["finetune", "--config", "pipe_bool.yaml"], "'resolution'"),
    (["finetune", "--config", "empty.yaml", "--pretrained", M], "no config keys"),
    ([*P, "--gate_learning_rate", "nan"], "gate_l"),  # the flag, or the config key it sets (gate_lr_mult)
    ([*P, "--learning_rate", "nan"], "--learning_rate"),
    ([*P, "--mode_scale", "nan"], "--mode_scale"),
    ([*P, "--logit_mean", "inf"], "--logit_mean"),
    ([*P, "--validation_guidance", "inf"], "--validation_guidance"),
    ([*P, "--resolution", "100000"], "--resolution"),
    # outputs never clobber; flags a bundled model would ignore
    ([*G, "--out", "afile.txt"], "exists"),
    ([*G, "--out", "g_new.png", "--trace", "afile.txt", "--adapter", "ft/adapter"], "exists"),
    (["world", "prompts", "--out", "afile.txt"], "exists"),
    ([*T, "--export", "run/final"], "did not write"),
    ([*F, "--export", "ft/adapter"], "did not write"),
    ([*G, "--resolution", "-1"], "--resolution"),
    ([*G, "--resolution", "7"], "--pretrained"),
    ([*G, "--resolution", "100000"], "--resolution"),
    ([*G, "--device", "bogus"], "--device"),
    ([*G, "--device", "cuda"], "--pretrained"),
    ([*G, "--dtype", "bogus"], "--dtype"),
    # lake inputs: unsolvable maps, reversed or open size ranges, lines without a map, zero counts
    (["lake", "generate", "--model", M, "--map", "SH,HG", "--out", "lg.png"], "cannot be reached"),
    (["lake", "generate", "--model", M, "--map", "S.H,.HH,H.G", "--out", "lg.png"], "cannot be reached"),
    (["lake", "prompts", "--sizes", "8-4", "--out", "lp.jsonl"], "reversed"),
    (["lake", "prompts", "--sizes", "4-", "--out", "lp.jsonl"], "open range"),
    (["lake", "prompts", "--sizes", "4-12", "--out", "lp.jsonl"], "--sizes"),
    (["lake", "prompts", "--per_cell", "0", "--out", "lp.jsonl"], "--per_cell"),
    (["lake", "prompts", "--out", "afile.txt"], "exists"),
    (["lake", "generate", "--model", M, "--map", "S.,.G", "--out", "afile.txt"], "exists"),
    (["lake", "render", "--prompts", "good.jsonl", "--out", "lr_out"], "good.jsonl:1"),
    (["lake", "sample", "--model", M, "--prompts", "good.jsonl", "--out", "ls_out"], "'map' key"),
    (["lake", "sample", "--model", M, "--prompts", "good.jsonl", "--out", "ls_out", "--images_per_map", "0"],
     "--images_per_map"),
    # RSR bounded in training as at inference; steps=0 has nothing to train
    ([*F, "--rsr", "layers=0,experts=2,latent_steps=1000000"], "latent_steps must be at most 64"),
    ([*F, "--rsr", "layers=0,experts=2,rank=1000000"], "rank must be at most 4096"),
    ([*F, "--rsr", "layers=0,experts=2,rank=100"], "exceeds layer 0's projection width"),
    ([*F, "--rsr", "layers=0,experts=2,latent_steps=0"], "steps=0"),
    ([*F, "--rsr", "layers=0,experts=2,tau=inf"], "temperature"),
    ([*F, "--rsr", "layers=0,experts=2,load_balance_weight=nan"], "load_balance_weight"),
    ([*T, "model.rsr=layers=0,latent_steps=0"], "steps=0"),
    # generate
    ([*G, "--seed", "-1"], "--seed"),
    ([*G, "--seed", str(2**40)], "--seed"),
    ([*G, "--seed", "abc"], "--seed"),
    ([*G, "--guidance", "nan"], "--guidance"),
    ([*G, "--guidance", "inf"], "--guidance"),
    ([*G, "--guidance", "-3"], "--guidance"),
    ([*G, "--steps", "0"], "--steps"),
    ([*S, "--steps", "100000"], "--steps"),
    ([*G, "--threads", "-1"], "--threads"),
    ([*G, "-n", "0"], "-n"),
    ([*G, "-n", "100000"], "-n"),
    ([*G, "--upscale", "0"], "--upscale"),
    ([*G, "--latent_steps", "-1"], "--latent_steps"),
    ([*G, "--out", "/proc/grid.png"], "--out"),
    ([*G, "--out", "adir"], "--out"),
    ([*G, "--out", "afile.txt/grid.png"], "afile.txt"),
    (["generate", "a \udcff\udcfe circle", "--model", M], "PROMPT"),
    (["generate", "  ", "--model", M], "PROMPT"),
    (["generate", "x", "--model", "/no/such/model"], "no bundled model"),
    (["generate", "x", "--model", "no_manifest"], "checksums.json"),
    (["generate", "x", "--model", "pickle"], "pickle"),
    (["generate", "x", "--model", "bad_meta"], "'canvas'"),
    (["generate", "x", "--model", "afile.txt"], "afile.txt"),
    ([*G, "--adapter", "adapter_edited"], "rsr_config.json"),
    ([*G, "--adapter", "/no/adapter"], "/no/adapter"),
    ([*G, "--trace", "t.safetensors"], "--trace"),
    ([*G, "--class", "red circle"], "--class"),
    (["generate", "--class", "red circle", "--model", M], "text-to-image"),
    # sample
    (["sample", "--prompts", "non_utf8.jsonl", "--model", M, "--out", "s_out"], "non_utf8.jsonl:1"),
    (["sample", "--prompts", "prompt_int.jsonl", "--model", M, "--out", "s_out"], "'prompt'"),
    (["sample", "--prompts", "tag_list.jsonl", "--model", M, "--out", "s_out"], "'tag'"),
    (["sample", "--prompts", "huge_count.jsonl", "--model", M, "--out", "s_out"], "'count'"),
    (["sample", "--prompts", "float_count.jsonl", "--model", M, "--out", "s_out"], "'count'"),
    (["sample", "--prompts", "malformed.jsonl", "--model", M, "--out", "s_out"], "malformed.jsonl:1"),
    (["sample", "--prompts", "empty.jsonl", "--model", M, "--out", "s_out"], "no metadata lines"),
    (["sample", "--prompts", "not_object.jsonl", "--model", M, "--out", "s_out"], "not_object.jsonl:1"),
    (["sample", "--prompts", "include_str.jsonl", "--model", M, "--out", "s_out"], "'include'"),
    (["sample", "--prompts", "exclude_str.jsonl", "--model", M, "--out", "s_out"], "'exclude'"),
    (["sample", "--prompts", "question_id_str.jsonl", "--model", M, "--out", "s_out"], "'id'"),
    (["sample", "--prompts", "question_deps.jsonl", "--model", M, "--out", "s_out"], "'dependencies'"),
    (["sample", "--prompts", "questions_str.jsonl", "--model", M, "--out", "s_out"], "'questions'"),
    (["sample", "--prompts", "bad_position.jsonl", "--model", M, "--out", "s_out"], "'position'"),
    (["sample", "--prompts", "missing.jsonl", "--model", M, "--out", "s_out"], "missing.jsonl"),
    ([*S, "--limit", "-1"], "--limit"),
    ([*S, "--images_per_prompt", "0"], "--images_per_prompt"),
    ([*S, "--batch_size", "0"], "--batch_size"),
    ([*S, "--seed", "-5"], "--seed"),
    ([*S, "--guidance", "nan"], "--guidance"),
    ([*S, "--out", "afile.txt"], "--out"),
    ([*S, "--out", "/proc/samples"], "--out"),
    ([*S, "--out", "adir/../afile.txt/x"], "afile.txt"),
    ([*S, "--out", "notdemo"], "no sample_run.json"),
    ([*S, "--out", "sampled", "--seed", "3"], "another run"),
    ([*S, "--out", "sampled", "--images_per_prompt", "2", "--model", "shapes-base"], "another run"),
    (["sample", "--classes", "--model", M, "--out", "s_out"], "text-to-image"),
    # train
    (["train", "missing.yaml"], "missing.yaml"),
    (["train", "list.yaml"], "list.yaml"),
    (["train", "broken.yaml"], "broken.yaml"),
    (["train", "non_utf8.yaml"], "non_utf8.yaml"),
    ([*T, "optim.beta1=2"], "optim.beta1"),
    ([*T, "optim.beta2=-0.1"], "optim.beta2"),
    ([*T, "optim.weight_decay=-1"], "optim.weight_decay"),
    ([*T, "optim.grad_clip=-1"], "optim.grad_clip"),
    ([*T, "optim.lr=nan"], "optim.lr"),
    ([*T, "optim.lr=.inf"], "optim.lr"),
    ([*T, "optim.warmup_steps=-5"], "optim.warmup_steps"),
    ([*T, "seed=-1"], "'seed'"),
    ([*T, f"seed={2**70}"], "'seed'"),
    ([*T, "threads=-1"], "'threads'"),
    ([*T, "steps=1e20"], "'steps'"),
    ([*T, "batch_size=0"], "'batch_size'"),
    ([*T, "ema_decay=1.5"], "'ema_decay'"),
    ([*T, "cond_dropout=nan"], "'cond_dropout'"),
    ([*T, "data_mix=position=-1,free=1"], "data_mix"),
    ([*T, "data_mix=position=0"], "data_mix"),
    ([*T, "out_dir=/proc/run"], "out_dir"),
    ([*T, "out_dir=afile.txt"], "out_dir"),
    ([*T, "--stop_after", "-1"], "--stop_after"),
    ([*T, "--export", "/proc/final"], "--export"),
    ([*T, "--export", "afile.txt"], "--export"),
    (["train", TINY, "out_dir=run", "--no_resume"], "holds a run"),
    (["train", TINY, "out_dir=run", "--overwrite", "--resume_from_checkpoint", "run/checkpoints/step_0000001"],
     "contradict"),
    (["train", TINY, "out_dir=run", "--resume_from_checkpoint", "run/checkpoints/nope"], "nope"),
    (["train", TINY, "out_dir=run", "seed=3", "steps=3"], "another request"),
    (["finetune", "--pretrained", "run/final", "--rsr", "layers=0,experts=2,latent_steps=1,rank=2", "--output_dir", "ft", "steps=2",
      "batch_size=2"], "another request"),
    (["train", TINY, "out_dir=run", "steps=\udcff"], "override"),
    # finetune
    (["finetune", "--pretrained", "/no/base", "steps=1"], "no bundled model"),
    (["finetune", "--pretrained", "no_manifest", "--rsr", "layers=0,experts=2,latent_steps=1,rank=1", "steps=1"], "checksums"),
    ([*F, "--rank", "0"], "--rank"),
    ([*F, "--output_dir", "/proc/ft"], "--output_dir"),
    ([*F, "--export", "afile.txt"], "--export"),
    ([*F, "optim.grad_clip=0"], "optim.grad_clip"),
    # world
    (["world", "prompts", "--per_task", "0", "--out", "p.jsonl"], "--per_task"),
    (["world", "prompts", "--seed", "-1", "--out", "p.jsonl"], "--seed"),
    (["world", "prompts", "--out", "/proc/p.jsonl"], "--out"),
    (["world", "prompts", "--out", "adir"], "--out"),
    (["world", "render", "--prompts", "non_utf8.jsonl", "--out", "r_out"], "non_utf8.jsonl:1"),
    (["world", "render", "--prompts", "huge_count.jsonl", "--out", "r_out"], "'count'"),
    (["world", "render", "--prompts", "good.jsonl", "--out", "r_out", "--distractors", "-1"], "--distractors"),
    (["world", "render", "--prompts", "good.jsonl", "--out", "afile.txt"], "--out"),
    (["world", "render", "--prompts", "good.jsonl", "--out", "r_out", "--images_per_prompt", "0"],
     "--images_per_prompt"),
    # evaluate
    (["evaluate", "no_such_dir"], "no_such_dir"),
    (["evaluate", "big"], "12000x12000"),
    (["evaluate", "incomplete"], "incomplete"),
    (["evaluate", "sampled", "--canvas", "0"], "--canvas"),
    (["evaluate", "adir"], "no prompt folders"),
    # demo
    (["demo", "--per_task", "0", "--out", "d_out"], "--per_task"),
    (["demo", "--per_task", "-1", "--out", "d_out"], "--per_task"),
    (["demo", "--images_per_prompt", "0", "--out", "d_out"], "--images_per_prompt"),
    (["demo", "--out", "afile.txt"], "--out"),
    (["demo", "--prompts", "non_utf8.jsonl", "--out", "d_out"], "non_utf8.jsonl:1"),
    (["demo", "--out", "notdemo", "--model", M, "--per_task", "1", "--images_per_prompt", "1"], "no sample_run.json"),
    (["demo", "--out", "notdemo", "--ground_truth", "--per_task", "1"], "no sample_run.json"),
    (["demo", "--seed", "-1", "--out", "d_out"], "--seed"),
    # lake
    (["lake", "prompts", "--out", "l.jsonl", "--per_cell", "0"], "--per_cell"),
    (["lake", "prompts", "--out", "l.jsonl", "--sizes", "9-12"], "lake size"),
    (["lake", "prompts", "--out", "l.jsonl", "--seed", "-1"], "--seed"),
    (["lake", "evaluate", "missing"], "missing"),
    (["lake", "evaluate", "adir"], "no prompt folders"),
    (["lake", "render", "--prompts", "missing.jsonl", "--out", "l_out"], "missing.jsonl"),
    (["lake", "generate", "--model", "adir", "--map", "S.X.,..H.,....,H..G", "--out", "l.png"], "map character"),
    (["lake", "train", str(ROOT / "configs" / "lake_base.yaml"), "steps=-1", "out_dir=l_run"], "'steps'"),
    # outputs: links, FIFOs; weights that are not what they claim; limits the same in files as on the command line
    ([*G, "--out", "link.png"], "symbolic link"),
    ([*G, "--out", "link.png", "--overwrite"], "symbolic link"),
    ([*G, "--out", "fifo", "--overwrite"], "not a regular file"),
    ([*G, "--trace", "fifo", "--adapter", "ft/adapter", "--out", "g_new.png"], "not a regular file"),
    (["world", "prompts", "--out", "link.png", "--overwrite"], "symbolic link"),
    (["world", "prompts", "--out", "fifo", "--overwrite"], "not a regular file"),
    (["lake", "prompts", "--out", "link.png", "--overwrite"], "symbolic link"),
    ([*S, "--out", "linked_out"], "symbolic link"),
    (["world", "render", "--prompts", "good.jsonl", "--out", "linked_out", "--overwrite"], "symbolic link"),
    (["lake", "render", "--prompts", "good.jsonl", "--out", "linked_out", "--overwrite"], "symbolic link"),
    (["demo", "--out", "linked_out", "--per_task", "1"], "symbolic link"),
    ([*T, "out_dir=linked_out"], "symbolic link"),
    ([*T, "--export", "linked_out"], "symbolic link"),
    (["generate", "x", "--model", "tampered"], "I32"),
    (["generate", "x", "--model", "wide_config"], "disagree with config.json"),
    (["sample", "--prompts", "good.jsonl", "--model", "tampered", "--out", "s_out"], "I32"),
    (["sample", "--prompts", "long_prompt.jsonl", "--model", M, "--out", "s_out"], "characters"),
    (["sample", "--prompts", "unknown_tag.jsonl", "--model", M, "--out", "s_out"], "made_up_task"),
    (["world", "render", "--prompts", "long_prompt.jsonl", "--out", "r_out"], "characters"),
    (["world", "render", "--prompts", "unknown_tag.jsonl", "--out", "r_out"], "made_up_task"),
    (["generate", "a red circle " * 200, "--model", M], "characters"),
    # command-line types and ranges
    ([*G, "--steps", "abc"], "--steps"),
    ([*G, "--guidance", "abc"], "--guidance"),
    ([*G, "-n", "-1"], "-n"),
    ([*G, "--upscale", "65"], "--upscale"),
    ([*G, "--threads", "2000"], "--threads"),
    ([*G, "--sampler", "bogus"], "--sampler"),
    ([*G, "--precision", "fp8"], "--precision"),
    ([*G, "--latent_steps", "65"], "--latent_steps"),
    ([*G, "--adapter", "afile.txt"], "afile.txt"),
    ([*S, "--batch_size", "100000"], "--batch_size"),
    ([*S, "--images_per_prompt", "20000"], "--images_per_prompt"),
    ([*S, "--limit", "abc"], "--limit"),
    (["world", "prompts", "--per_task", "abc", "--out", "p.jsonl"], "--per_task"),
    (["world", "prompts", "--set", "bogus", "--out", "p.jsonl"], "--set"),
    (["world", "render", "--prompts", "good.jsonl", "--out", "r_out", "--canvas", "48"], "--canvas"),
    (["evaluate", "afile.txt"], "afile.txt"),
    (["evaluate", "sampled", "--canvas", "abc"], "--canvas"),
    (["lake", "prompts", "--sizes", "-4", "--out", "lp.jsonl"], "--sizes"),
    (["lake", "prompts", "--sizes", "abc", "--out", "lp.jsonl"], "--sizes"),
    (["demo", "--images_per_prompt", "abc", "--out", "d_out"], "--images_per_prompt"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--port", "abc"], "--port"),
    # training configs: types, ranges, unknown keys, bounds with a reason
    ([*T, "steps=0"], "'steps'"),
    ([*T, "steps=nan"], "'steps'"),
    ([*T, "batch_size=2.5"], "'batch_size'"),
    ([*T, "optim.lr=0"], "'optim.lr'"),
    ([*T, "ema_decay=inf"], "'ema_decay'"),
    ([*T, "cond_dropout=1"], "'cond_dropout'"),
    ([*T, "keep_checkpoints=0"], "'keep_checkpoints'"),
    ([*T, "model.canvas=48"], "'model.canvas'"),
    ([*T, "model.kind=bogus"], "'model.kind'"),
    ([*T, "precision=fp8"], "'precision'"),
    ([*T, "unknown_key=1"], "'unknown_key'"),
    ([*T, "optim.bogus=1"], "'optim.bogus'"),
    ([*T, "optim=3"], "'optim'"),
    ([*T, "model.rsr=layers=0,latent_steps=65"], "at most 64"),
    ([*T, "model.rsr=layers=0,experts=1000"], "at most 256"),
    # the typed schema: switches take true/false only, text keys refuse emptiness, bounds name their reason
    ([*T, "grad_checkpointing=1"], "'grad_checkpointing'"),
    ([*T, "finetune.lora_rank=5000"], "above the widest projection"),
    ([*T, "model.size="], "'model.size'"),
    (["lake", "generate", "--model", M, "--map", "7", "--size", "9", "--out", "lg.png"], "8 cells fill"),
    (["serve", "--host", " "], "--host"),
    # serve (checked before gradio is imported or a model loaded)
    (["serve", "--port", "0"], "--port"),
    (["serve", "--lake_adapter", "adir"], "--lake_model"),
]


def test_there_are_at_least_200_cases_covering_every_command():
    from thinkpix.cli import COMMANDS, build_parser

    assert len(CASES) >= 200
    registered = set(build_parser()._subparsers._group_actions[0].choices)
    assert {argv[0] for argv, _ in CASES} == registered & set(COMMANDS)


@pytest.mark.parametrize("argv, names", CASES, ids=[f"{i:03d}-{a[0]}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(sandbox, monkeypatch, capsys, argv, names):
    monkeypatch.chdir(sandbox)
    before = snapshot(sandbox)
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and err.startswith("thinkpix"), err
    assert names in err, err
    assert snapshot(sandbox) == before
