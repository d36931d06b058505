"""`thinkpix sample --classes --pretrained DIT_PIPELINE`: every class a DiT pipeline names (its id2label), a
folder per class, resumable like any sampled folder; a text-to-image pipeline is refused with the reason."""

from thinkpix.cli import main
from tiny_pipelines import save_pipeline


def test_sample_classes_of_a_dit_pipeline(tmp_path, capsys):
    dit = save_pipeline("dit", tmp_path / "dit")
    argv = ["sample", "--classes", "--pretrained", str(dit), "--out", str(tmp_path / "out"), "--steps", "1",
            "--images_per_prompt", "2"]
    assert main(argv) == 0
    folders = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert folders == ["00_red_circle", "01_blue_square", "02_bench", "03_green_triangle"]
    assert all(len(list((tmp_path / "out" / f).glob("*.png"))) == 2 for f in folders)
    before = (tmp_path / "out" / "02_bench" / "0001.png").stat().st_mtime_ns
    assert main(argv) == 0  # the same command again: every image kept
    assert (tmp_path / "out" / "02_bench" / "0001.png").stat().st_mtime_ns == before
    capsys.readouterr()
    assert main([*argv[:-2], "--images_per_prompt", "3", "--steps", "2"]) == 2  # another request, same folder
    assert "another run" in capsys.readouterr().err


def test_sample_classes_of_a_text_to_image_pipeline_says_why(tmp_path, capsys):
    sd3 = save_pipeline("sd3", tmp_path / "sd3")
    assert main(["sample", "--classes", "--pretrained", str(sd3), "--out", str(tmp_path / "out")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (diffusers may log while the pipeline loads)
    assert last.startswith("thinkpix sample: error: ") and "text-to-image" in last, last
