"""Control at inference: control maps from names + boxes/masks, synthesis, restoration, and the CLI."""
import numpy as np
import pytest
import torch
from PIL import Image

from paper_repro.cli import main
from paper_repro.defect_gan.control import (box_mask, class_vector, control_map, region_change, restore,
                                            synthesize)
from paper_repro.defect_gan.generator import Generator
from paper_repro.errors import UserError

CLASSES = ("Crack", "Spallation", "Efflorescence", "ExposedBars", "CorrosionStain")


def test_control_map_from_names_and_box():
    A = control_map(["crack", "CorrosionStain"], CLASSES, 8, box=(2, 1, 6, 4))
    assert A.shape == (5, 8, 8)
    assert torch.equal(A[:, 2, 3], torch.tensor([1.0, 0, 0, 0, 1]))  # inside (y=2, x=3)
    assert A[:, 5, 5].sum() == 0 and A[:, 1:4, 2:6].sum() == 2 * 12
    assert torch.equal(box_mask(8, (0.25, 0.125, 0.75, 0.5)), box_mask(8, (2, 1, 6, 4)))  # fractions
    with pytest.raises(UserError, match="unknown defect class"):
        class_vector(["rust"], CLASSES)
    with pytest.raises(UserError, match="empty"):
        box_mask(8, (3, 3, 3, 5))


def test_control_map_from_a_painted_mask_is_resized():
    painted = np.zeros((4, 4), bool)
    painted[:2, :2] = True
    A = control_map(["Spallation"], CLASSES, 8, mask=painted)
    assert A.shape == (5, 8, 8) and A[1, :4, :4].min() == 1 and A[1, 4:].max() == 0 and A[0].max() == 0


def test_synthesis_restricted_keeps_outside_exactly_and_restore_targets_normal():
    torch.manual_seed(0)
    G = Generator(5, conv_dim=4, n_res_blocks=1, spade_hidden=8).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    A = control_map(["Crack"], CLASSES, 16, box=(4, 4, 12, 12))
    out = synthesize(G, x, A, restrict=True)
    region = box_mask(16, (4, 4, 12, 12))
    assert torch.equal(out.image * (1 - region), x * (1 - region))
    change = region_change(out.image, x, region)
    assert change["outside"] == 0 and change["inside"] > 0
    assert synthesize(G, x, A).image.shape == x.shape
    seen = {}
    G.register_forward_pre_hook(lambda m, inputs: seen.update(control=inputs[1]))
    restore(G, x)
    assert seen["control"].abs().sum() == 0


def test_cli_train_synth_restore_on_bundled_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["defect-gan", "train", "--scale", "smoke", "--out", str(run), "--iterations", "5"]) == 0
    assert (run / "checkpoint_00000005.safetensors").is_file() and (run / "log.csv").is_file()
    assert main(["defect-gan", "train", "--scale", "smoke", "--out", str(run)]) == 2  # exists, no --resume
    normals = tmp_path / "normals"
    normals.mkdir()
    for i in range(2):  # images never seen in training, of another size
        Image.fromarray((np.random.default_rng(i).random((40, 50, 3)) * 255).astype(np.uint8)).save(
            normals / f"n{i}.png")
    out = tmp_path / "synth"
    assert main(["defect-gan", "synth", "--run", str(run), "--normals", str(normals), "--classes",
                 "Crack,CorrosionStain", "--region", "0.25,0.25,0.75,0.75", "--n", "3", "--out", str(out)]) == 0
    written = sorted(out.glob("*.png"))
    assert len(written) == 3 and Image.open(written[0]).size == (32, 32)
    assert len(list((out / "maps").glob("*.png"))) == 3
    assert main(["defect-gan", "synth", "--run", str(run), "--normals", str(normals), "--classes", "rust",
                 "--out", str(out)]) == 2
    assert main(["defect-gan", "restore", "--run", str(run), "--images", str(out), "--out",
                 str(tmp_path / "restored")]) == 0
    assert len(list((tmp_path / "restored").glob("*_restored.png"))) == 3
