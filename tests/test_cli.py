"""gan-upscale on folders of mixed files, in-process (the service's engine) and against the real server."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from app import cli
from tests.helpers import photo, write_nearest_model

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def models(sr_models):
    return sr_models


def rgb16(w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)


@pytest.fixture
def mixed(tmp_path):
    """A folder of PNG, EXIF-rotated JPEG with an ICC profile, 16-bit RGB PNG and TIFF, alpha, a sub-folder and a broken file."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(photo(30, 20)).save(src / "plain.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    exif[0x010F] = "TestCam"  # Make: must survive
    Image.fromarray(photo(40, 24, seed=2)).save(src / "rotated.jpg", quality=95, exif=exif.tobytes(), icc_profile=SRGB)
    cv2.imwrite(str(src / "deep.png"), rgb16(17, 11)[..., ::-1])
    cv2.imwrite(str(src / "deep.tif"), rgb16(13, 9)[..., ::-1])
    rgba = np.dstack([photo(16, 16, seed=3), np.full((16, 16), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "sub" / "alpha.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (src / "notes.txt").write_text("not an image: ignored in folders")
    return src


def run(*argv: str) -> int:
    return cli.main([*argv, "--no-progress"])


def test_a_folder_of_mixed_files(models, mixed, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(str(mixed), "-o", str(out), "--scale", "4", "-r", "--models-dir", str(models))
    err = capsys.readouterr().err
    assert code == 1  # one file failed: the batch finished, the exit code says so
    assert "5 written" in err and "1 failed" in err and "broken.jpg" in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "deep.png", "deep.tif", "plain.png", "rotated.jpg", "sub", "sub/alpha.png"]

    assert Image.open(out / "plain.png").size == (120, 80)
    rotated = Image.open(out / "rotated.jpg")
    assert rotated.size == (96, 160)  # EXIF orientation applied: portrait
    assert rotated.getexif().get(0x0112, 1) == 1 and rotated.getexif()[0x010F] == "TestCam"
    assert rotated.info["icc_profile"] == SRGB
    for name, (w, h) in (("deep.png", (17, 11)), ("deep.tif", (13, 9))):
        deep = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert deep.dtype == np.uint16 and deep.shape == (h * 4, w * 4, 3)
        want = np.repeat(np.repeat(rgb16(w, h), 4, 0), 4, 1)  # nearest x4 of the 16-bit input, all 16 bits kept
        assert np.abs(deep[..., ::-1].astype(int) - want).max() <= 1
    alpha = Image.open(out / "sub" / "alpha.png")
    assert alpha.mode == "RGBA" and alpha.size == (64, 64) and alpha.getchannel("A").getextrema() == (128, 128)


@pytest.mark.parametrize("scale", ["1", "1.5", "2", "2.5", "3.7", "8"])
def test_fractional_scales_give_the_rounded_size(models, tmp_path, scale):
    src = tmp_path / "odd.png"
    Image.fromarray(photo(37, 23)).save(src)
    assert run(str(src), "-o", str(tmp_path / "o"), "--scale", scale, "--models-dir", str(models)) == 0
    assert Image.open(tmp_path / "o" / "odd.png").size == (round(37 * float(scale)), round(23 * float(scale)))


def test_beside_the_input_with_a_suffix_skip_existing_and_dry_run(models, tmp_path, capsys):
    Image.fromarray(photo(20, 20)).save(tmp_path / "a.png")
    Image.fromarray(photo(20, 20)).save(tmp_path / "b.png", format="PNG")
    assert run(str(tmp_path / "*.png"), "--scale", "2", "--models-dir", str(models)) == 0
    assert Image.open(tmp_path / "a_x2.png").size == (40, 40) and (tmp_path / "b_x2.png").exists()
    before = (tmp_path / "a_x2.png").stat().st_mtime_ns
    capsys.readouterr()
    # a second run neither re-upscales its own outputs nor, with --skip-existing, overwrites them
    assert run(str(tmp_path), "--scale", "2", "--skip-existing", "--models-dir", str(models)) == 0
    assert (tmp_path / "a_x2.png").stat().st_mtime_ns == before and not (tmp_path / "a_x2_x2.png").exists()
    assert run(str(tmp_path), "--scale", "2", "--dry-run", "--format", "webp") == 0
    assert f"{tmp_path / 'a.png'} -> {tmp_path / 'a_x2.webp'}" in capsys.readouterr().out
    assert not (tmp_path / "a_x2.webp").exists()


def test_missing_inputs_and_missing_models_are_reported(models, tmp_path, capsys):
    assert run(str(tmp_path / "nope.png"), "--models-dir", str(models)) == 1
    assert "no such file" in capsys.readouterr().err
    Image.fromarray(photo(8, 8)).save(tmp_path / "a.png")
    assert run(str(tmp_path / "a.png"), "--model", "face-x4", "--models-dir", str(models)) == 2
    assert "unknown model 'face-x4'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "a.png"), "--scale", "9"])


def test_mode_picks_the_real_photo_model_in_process(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    write_nearest_model(models, "real-x4-l1", 4)
    Image.fromarray(photo(8, 6)).save(tmp_path / "a.png")
    assert run(str(tmp_path / "a.png"), "--mode", "faithful", "-o", str(tmp_path / "out"), "--models-dir", str(models)) == 0
    assert Image.open(tmp_path / "out" / "a.png").size == (32, 24)
    assert run(str(tmp_path / "a.png"), "--mode", "crisp", "-o", str(tmp_path / "out2"), "--models-dir", str(models)) == 2
    assert "real-x4" in capsys.readouterr().err  # crisp is real-x4, not in this folder
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "a.png"), "--model", "sr-x4", "--mode", "crisp"])


def test_server_mode(test_server, mixed, tmp_path, capsys):
    """--server sends each file to /upscale on a running service."""
    out = tmp_path / "remote"
    code = run(str(mixed), "-o", str(out), "--scale", "3", "--server", test_server.url)
    assert code == 1 and "1 failed" in capsys.readouterr().err
    assert Image.open(out / "plain.png").size == (90, 60)
    assert Image.open(out / "rotated.jpg").size == (72, 120)
    deep = cv2.imread(str(out / "deep.tif"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (27, 39, 3)
    assert Image.open(io.BytesIO((out / "plain.png").read_bytes())).mode == "RGB"
