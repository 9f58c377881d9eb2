"""Face-aware upscaling: detection framing, the feathered paste, and the training data options for faces."""
from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from app import faces
from tests.helpers import ROOT, SHARED, ServerProcess, photo, png_bytes
from training import data

FACES_TEST = SHARED / "faces" / "UTKFace" / "test"


def test_feather_mask_is_one_inside_and_falls_to_zero_at_the_edges():
    m = faces.feather_mask(40)
    assert m.shape == (40, 40)
    assert m[8:32, 8:32].min() == 1.0  # the face itself takes the face model's pixels only
    assert m[0].max() < 0.05 and m[:, -1].max() < 0.05  # nothing of the square's edge shows
    assert np.allclose(m, m.T) and np.allclose(m, m[::-1, ::-1])
    assert np.all(np.diff(m[20, :20]) >= 0)  # a smooth rise, no step


def test_squares_frame_faces_keep_them_inside_and_skip_other_sizes():
    boxes = [(0, 0, 20, 20), (60, 40, 30, 30), (10, 10, 6, 6), (0, 0, 90, 90)]
    sq = faces.squares(boxes, 100, 80, min_px=16, max_px=48)
    assert len(sq) == 2  # the 6 px face is too small, the 90 px one too big
    first, second = sq
    assert first.side == 32 and first.x == 0 and first.y == 0  # 25 rounded up to a multiple of 8; inside the image
    assert second.side == 40
    for s in sq:
        assert 0 <= s.x <= 100 - s.side and 0 <= s.y <= 80 - s.side


def test_same_face_found_twice_counts_once():
    a, b, c = faces.Square(10, 10, 30), faces.Square(14, 12, 28), faces.Square(60, 10, 30)
    assert faces._overlaps(a, b) and not faces._overlaps(a, c)


def test_crop_is_the_model_input_and_paste_touches_only_the_square():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    sq = faces.Square(20, 10, 24)
    tile = faces.crop(pixels, 255, sq)
    assert tile.shape == (3, 24, 24) and tile.dtype == np.float32
    assert np.array_equal(np.round(tile * 255).astype(np.uint8).transpose(1, 2, 0), pixels[10:34, 20:44])
    out = np.zeros((200, 240, 3), np.uint8)
    faces.paste(out, 255, sq, 4, np.ones((3, 96, 96), np.float32))
    changed = np.argwhere(out.any(axis=2))
    assert changed[:, 0].min() >= 40 and changed[:, 0].max() < 40 + 96
    assert changed[:, 1].min() >= 80 and changed[:, 1].max() < 80 + 96
    assert out[40 + 48, 80 + 48].tolist() == [255, 255, 255]  # the centre is the face model's output


def test_detects_real_faces_but_not_a_faceless_photo():
    if not FACES_TEST.exists():
        pytest.skip("shared face data not present")
    canvas = np.full((120, 160, 3), 128, np.uint8)
    for i, path in enumerate(data.list_images([FACES_TEST])[:2]):
        canvas[30:62, 20 + 80 * i : 52 + 80 * i] = data.resize_short_side(data.load_rgb(path), 32)
    assert len(faces.detect(canvas, 255)) == 2
    assert faces.detect(photo(160, 120, seed=1), 255) == []
    sixteen_bit = canvas.astype(np.uint16) * 257
    assert len(faces.detect(sixteen_bit, 65535)) == 2


def test_gray_and_upright_options_of_the_patch_sampler():
    images = [photo(64, 64, seed=i) for i in range(3)]
    gray = data.PatchSampler(images, 32, 4, seed=0, gray=1.0)
    lr, hr = gray.sample(4)
    assert np.allclose(hr[:, 0], hr[:, 1]) and np.allclose(hr[:, 1], hr[:, 2])
    colour = data.PatchSampler(images, 32, 4, seed=0)
    assert not np.allclose(colour.sample(4)[1][:, 0], colour.sample(4)[1][:, 1])
    # upright: every patch is a crop of the image or its mirror, never a rotation
    img = photo(32, 32, seed=5)
    upright = data.PatchSampler([img], 32, 4, seed=0, upright=True)
    for _ in range(8):
        patch = np.round(upright.sample(1)[1][0].transpose(1, 2, 0) * 255).astype(np.uint8)
        assert np.array_equal(patch, img) or np.array_equal(patch, img[:, ::-1])


def test_lr_sources_joined_by_plus_each_get_used():
    calls = []
    make = data.lr_maker("bicubic+pipeline", preset="light")
    hr = photo(64, 64, seed=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        lr = make(hr, 4, rng)
        calls.append(np.array_equal(lr, data.downscale(hr, 4)))
        assert lr.shape == (16, 16, 3)
    assert 3 <= sum(calls) <= 17  # about half bicubic, half the pipeline


def test_resize_short_side_keeps_the_aspect():
    assert data.resize_short_side(photo(200, 100), 50).shape == (50, 100, 3)
    assert data.resize_short_side(photo(90, 180), 60).shape == (120, 60, 3)


# -- end to end: the shipped face model inside whole photos, through the real server ---------------------------------

needs_faces = pytest.mark.skipif(not FACES_TEST.exists(), reason="shared face data not present")


@pytest.fixture(scope="module")
def face_server(tmp_path_factory):
    """A real server on the shipped sr-x4, sr-x2 and face-x4 (only: quicker to start than every model)."""
    d = tmp_path_factory.mktemp("face-models")
    for name in ("sr-x4", "sr-x2", "face-x4"):
        for suffix in (".onnx", ".json"):
            (d / (name + suffix)).symlink_to(ROOT / "models" / (name + suffix))
    srv = ServerProcess({"GAN_MODELS_DIR": str(d)})
    yield srv
    srv.stop()


def group_photo() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 512x384 HR photo with three held-out faces (128 px) on a plain backdrop, and the faces' corners."""
    yy, xx = np.mgrid[0:384, 0:512]
    hr = np.stack([90 + 60 * xx / 512, 110 + 40 * yy / 384, 140 - 50 * xx / 512], axis=2).astype(np.uint8)
    corners = [(40, 30), (192, 200), (350, 60)]
    for (x, y), path in zip(corners, data.list_images([FACES_TEST])[10:13]):
        hr[y : y + 128, x : x + 128] = data.resize_short_side(data.load_rgb(path), 128)[:128, :128]
    return hr, corners


def post(server, img: np.ndarray | Image.Image, query: str) -> httpx.Response:
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    r = httpx.post(f"{server.url}/upscale?{query}", content=png_bytes(im), timeout=120)
    assert r.status_code == 200, r.text
    return r


def face_psnr(out: np.ndarray, hr: np.ndarray, corners) -> float:
    from training import metrics

    return float(np.mean([metrics.psnr_y(out[y : y + 128, x : x + 128], hr[y : y + 128, x : x + 128], 4) for x, y in corners]))


@needs_faces
def test_faces_in_a_photo_are_enhanced_and_the_rest_untouched(face_server):
    hr, corners = group_photo()
    lr = data.downscale(hr, 4)
    plain = post(face_server, lr, "faces=false")
    aware = post(face_server, lr, "faces=true")
    assert aware.headers["x-faces-enhanced"] == "3" and aware.headers["x-face-model"] == "face-x4"
    assert aware.headers["x-model"] == "sr-x4" and "x-faces-enhanced" not in plain.headers
    general, enhanced = (np.asarray(Image.open(io.BytesIO(r.content))) for r in (plain, aware))
    # face-x4 (an SRResNet fine-tuned on faces) over the general model on these three faces: +0.10 dB over the
    # sr-x4 of 2026-12-03 (31.51 vs 31.41), +0.14 over the one before it, more over older ones. The lead shrinks as
    # sr-x4 trains on (on 200 held-out faces it is +0.6 dB: README). A face-x4 fine-tuned from the efficient net
    # was 0.1-0.16 dB lower on degraded faces and stayed unshipped (README, faces).
    assert face_psnr(enhanced, hr, corners) > face_psnr(general, hr, corners) + 0.05
    changed = np.argwhere(np.any(general != enhanced, axis=2))
    for y, x in changed:  # every changed pixel lies in (or at the rim of) a face's square
        assert any(cx - 48 <= x < cx + 176 and cy - 48 <= y < cy + 176 for cx, cy in corners)


@needs_faces
def test_a_photo_without_faces_is_identical_to_faces_false(face_server):
    img = photo(160, 120, seed=1)
    plain, aware = post(face_server, img, "faces=false"), post(face_server, img, "faces=true")
    assert aware.headers["x-faces-enhanced"] == "0" and aware.content == plain.content


@needs_faces
def test_grayscale_photo_with_faces(face_server):
    hr, corners = group_photo()
    gray_hr = np.asarray(Image.fromarray(hr).convert("L"))
    lr = Image.fromarray(gray_hr).resize((128, 96), Image.Resampling.BICUBIC)
    plain, aware = post(face_server, lr, "faces=false"), post(face_server, lr, "faces=true")
    assert int(aware.headers["x-faces-enhanced"]) >= 2
    out = Image.open(io.BytesIO(aware.content))
    assert out.mode == "L" and out.size == (512, 384)
    gray3 = np.repeat(gray_hr[..., None], 3, axis=2)
    as_rgb = [np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")) for r in (plain, aware)]
    assert face_psnr(as_rgb[1], gray3, corners) > face_psnr(as_rgb[0], gray3, corners)


@needs_faces
def test_faces_with_the_x2_model(face_server):
    hr, corners = group_photo()
    lr = data.downscale(hr, 4)
    r = post(face_server, lr, "faces=true&scale=2")
    assert r.headers["x-model"] == "sr-x2" and r.headers["x-faces-enhanced"] == "3"
    assert Image.open(io.BytesIO(r.content)).size == (256, 192)


def test_faces_true_without_a_face_model_is_a_clear_422(test_server):
    r = httpx.post(f"{test_server.url}/upscale?faces=true", content=png_bytes(Image.fromarray(photo(32, 32))), timeout=30)
    assert r.status_code == 422 and "face model 'face-x4'" in r.json()["error"]["message"]
    r = httpx.post(f"{test_server.url}/upscale?faces=maybe", content=png_bytes(Image.fromarray(photo(32, 32))), timeout=30)
    assert r.status_code == 422


def test_face_model_is_never_the_default_upscaler(face_server):
    r = post(face_server, photo(40, 30), "")
    assert r.headers["x-model"] == "sr-x4"
    models = {m["name"]: m for m in httpx.get(face_server.url + "/v1/models").json()["models"]}
    assert models["face-x4"]["domain"] == "faces" and "identity" in models["face-x4"]["intended_use_and_limitations"]


@needs_faces
def test_shipped_face_model_meets_its_bars_on_held_out_faces(tmp_path):
    """The issue's targets, re-measured from the files on 60 of the 200 test faces, and as the card records them."""
    import json

    from training.evaluate_faces import evaluate_faces

    for path in data.list_images([FACES_TEST])[:60]:
        (tmp_path / path.name).symlink_to(path)
    models = ROOT / "models"
    for r in (evaluate_faces([models / "sr-x4.onnx", models / "face-x4.onnx"], [str(tmp_path)]),
              json.loads((models / "face-x4.json").read_text())["metrics"]["faces"]):
        clean, degraded = r["bicubic"], r["degraded"]
        assert clean["face-x4"]["psnr_y"] >= clean["sr-x4"]["psnr_y"] + 0.5
        assert degraded["face-x4"]["psnr_y"] >= degraded["sr-x4"]["psnr_y"] + 1.0
        assert clean["face-x4"]["grad_ratio"] > clean["sr-x4"]["grad_ratio"]  # and sharper


def test_detection_searches_a_bounded_copy_of_large_images(monkeypatch):
    """Haar detection costs CPU per searched pixel: a large input is searched at most at DETECT_MAX_PIXELS,
    and boxes come back in input pixels."""
    seen = []

    class Fake:
        def detectMultiScale(self, gray, **kw):  # noqa: N802 - OpenCV's name
            seen.append(gray.shape)
            return [(gray.shape[1] // 4, gray.shape[0] // 4, 48, 48)]

    monkeypatch.setattr(faces, "_cascade", lambda: Fake())
    big = np.zeros((3000, 4000, 3), np.uint8)
    (x, y, w, h), = faces.detect(big, 255)
    assert seen[-1][0] * seen[-1][1] <= faces.DETECT_MAX_PIXELS * 1.01
    assert abs(x - 1000) <= 2 and abs(y - 750) <= 2 and abs(w - 48 * 4000 / seen[-1][1]) <= 1
    faces.detect(np.zeros((100, 80, 3), np.uint8), 255)
    assert seen[-1] == (200, 160)  # small inputs: the 2x enlargement, as before
