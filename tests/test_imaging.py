"""decode/encode over the image kinds users send, and every way an upload can be bad."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import imaging
from app.config import Settings
from app.errors import ApiError
from tests.helpers import encoded, photo, png_bytes, png_declaring

LIMIT = 10_000_000


def decode(data: bytes) -> imaging.Decoded:
    return imaging.decode(data, LIMIT)


def status_of(data: bytes, limit: int = LIMIT) -> int:
    with pytest.raises(ApiError) as e:
        imaging.decode(data, limit)
    return e.value.status


def test_rgb_png_roundtrip():
    arr = photo(40, 30)
    d = decode(png_bytes(Image.fromarray(arr)))
    assert d.pixels.dtype == np.uint8 and d.pixels.shape == (30, 40, 3)
    assert np.array_equal(d.pixels, arr) and d.alpha is None and not d.gray
    assert d.format == "PNG" and d.output_format(None, (80, 60)) == "png"


def test_jpeg_defaults_to_jpeg():
    d = decode(encoded(Image.fromarray(photo()), "JPEG", quality=90))
    assert d.format == "JPEG" and d.output_format(None, (128, 96)) == "jpeg"


def test_output_format_respects_encoder_limits():
    d = decode(encoded(Image.fromarray(photo()), "WEBP"))
    assert d.output_format(None, (16383, 10)) == "webp"
    assert d.output_format(None, (16400, 10)) == "png"  # the default falls back where WebP cannot go
    assert d.output_format("jpeg", (16400, 10)) == "jpeg"
    with pytest.raises(ApiError) as e:
        d.output_format("webp", (16400, 10))  # asked for explicitly: say so, before any compute
    assert e.value.status == 413


def test_rgba_keeps_alpha():
    arr = np.dstack([photo(20, 10), np.linspace(0, 255, 200, dtype=np.uint8).reshape(10, 20)])
    d = decode(png_bytes(Image.fromarray(arr, "RGBA")))
    assert d.alpha is not None and np.array_equal(d.alpha, arr[..., 3])


def test_opaque_alpha_is_dropped():
    arr = np.dstack([photo(20, 10), np.full((10, 20), 255, np.uint8)])
    assert decode(png_bytes(Image.fromarray(arr, "RGBA"))).alpha is None


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_grayscale_modes(mode):
    im = Image.fromarray(photo(16, 12)).convert(mode)
    d = decode(png_bytes(im))
    assert d.gray and d.pixels.shape == (12, 16, 3)
    assert np.array_equal(d.pixels[..., 0], d.pixels[..., 2])
    assert (d.alpha is not None) == (mode == "LA" and np.asarray(im.getchannel("A")).min() < 255)


def test_palette_with_transparency_becomes_rgba():
    im = Image.fromarray(photo(16, 16)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    d = decode(png_bytes(im, transparency=0))
    assert d.alpha is not None and d.alpha.min() == 0 and not d.gray


def test_16bit_grayscale_stays_16bit():
    g = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    d = decode(png_bytes(Image.fromarray(g)))
    assert d.pixels.dtype == np.uint16 and d.maxval == 65535 and d.gray
    assert np.array_equal(d.pixels[..., 1], g)
    out, media = imaging.encode(d.pixels, None, True, "png", 90)
    back = Image.open(io.BytesIO(out))
    assert media == "image/png" and back.mode.startswith("I") and np.array_equal(np.asarray(back), g)


def test_cmyk_jpeg_decodes_to_rgb():
    cmyk = Image.fromarray(photo(24, 24)).convert("CMYK")
    d = decode(encoded(cmyk, "JPEG", quality=95))
    ref = np.asarray(Image.fromarray(photo(24, 24)).convert("CMYK").convert("RGB"), dtype=float)
    assert d.pixels.shape == (24, 24, 3)
    assert np.abs(d.pixels.astype(float) - ref).mean() < 8


def test_exif_orientation_is_applied():
    im = Image.fromarray(photo(40, 20))  # landscape pixels ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... that the camera says must be rotated 90 degrees: portrait
    d = decode(encoded(im, "JPEG", exif=exif.tobytes()))
    assert d.size == (20, 40)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    d = decode(buf.getvalue())
    assert d.frames == 3 and d.pixels[0, 0, 0] > 200 and d.pixels[0, 0, 2] < 50


def test_frames_are_counted_only_up_to_a_bound():
    """A TIFF of 40k tiny pages took 8 s of CPU to count: counting stops past MAX_FRAMES_COUNTED."""
    from app import imaging

    pages = [Image.new("L", (1, 1), i % 256) for i in range(imaging.MAX_FRAMES_COUNTED + 50)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    d = decode(buf.getvalue())
    assert d.frames == imaging.MAX_FRAMES_COUNTED + 1 and d.size == (1, 1)


def test_only_accepted_formats_are_parsed_and_pillows_bomb_guard_stays_on(tmp_path):
    from app import imaging
    from app.config import Settings
    from app.main import create_app

    assert "EPS" not in imaging.OPENERS and "ICO" not in imaging.OPENERS
    with pytest.raises(ApiError) as e:
        decode(encoded(Image.new("RGB", (16, 16)), "ICO"))
    assert e.value.status == 415
    create_app(Settings(models_dir=tmp_path, max_input_pixels=200_000_000))
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= 400_000_000  # on, above our own limit


@pytest.mark.parametrize("w,h", [(1, 1), (1, 1000), (1000, 1)])
def test_extreme_shapes_decode(w, h):
    assert decode(png_bytes(Image.new("RGB", (w, h), "white"))).size == (w, h)


def test_empty_body_is_400():
    assert status_of(b"") == 400


@pytest.mark.parametrize("data", [b"hello, I am text", b"\x00" * 100, b"GIF87"])
def test_not_an_image_is_415(data):
    assert status_of(data) == 415


def test_unsupported_format_is_415():
    assert status_of(encoded(Image.new("RGB", (8, 8)), "ICO")) == 415


def test_truncated_png_is_400():
    data = png_bytes(Image.fromarray(photo(64, 64)))
    assert status_of(data[: len(data) // 2]) == 400


def test_truncated_jpeg_is_400():
    data = encoded(Image.fromarray(photo(64, 64)), "JPEG")
    assert status_of(data[: len(data) // 3]) == 400


def _multiframe(fmt: str) -> bytes:
    frames = [Image.fromarray(photo(40, 30, seed=i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["TIFF", "GIF"])
def test_truncated_multiframe_files_are_4xx_at_every_length(fmt):
    data = _multiframe(fmt)
    for cut in range(1, len(data), max(1, len(data) // 150)):
        try:
            imaging.decode(data[:cut], LIMIT)
        except ApiError as e:
            assert 400 <= e.status < 500


def test_huge_declared_size_is_413_before_decoding():
    with pytest.raises(ApiError) as e:
        imaging.decode(png_declaring(100_000, 100_000), LIMIT)
    assert e.value.status == 413 and str(LIMIT) in e.value.message


def test_pixel_limit_is_exact():
    data = png_bytes(Image.new("RGB", (100, 100)))
    assert imaging.decode(data, 10_000).size == (100, 100)
    assert status_of(data, 9_999) == 413


@pytest.mark.parametrize("fmt,media", [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_encode_formats(fmt, media):
    arr = photo(32, 16)
    data, mt = imaging.encode(arr, None, False, fmt, 90)
    back = Image.open(io.BytesIO(data))
    assert mt == media and back.size == (32, 16) and back.format == fmt.upper()


def test_png_compression_level_is_a_setting():
    """GAN_PNG_COMPRESS_LEVEL: fewer bytes at a higher level, the same pixels; 8- and 16-bit paths alike."""
    arr = np.asarray(Image.fromarray(photo(64, 64)).resize((256, 256), Image.BICUBIC))
    fast, small = (imaging.encode(arr, None, False, "png", 90, png_level=lvl)[0] for lvl in (1, 9))
    assert len(small) < len(fast)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(fast))), np.asarray(Image.open(io.BytesIO(small))))
    deep = arr.astype(np.uint16) * 257
    fast16, small16 = (imaging.encode(deep, None, False, "png", 90, png_level=lvl)[0] for lvl in (0, 9))
    assert len(small16) < len(fast16)
    assert Settings(png_compress_level=9).png_compress_level == 9
    with pytest.raises(ValueError):
        Settings(png_compress_level=10)


def test_encode_gray_and_alpha():
    arr, alpha = photo(8, 8), np.full((8, 8), 128, np.uint8)
    assert Image.open(io.BytesIO(imaging.encode(arr, alpha, True, "png", 90)[0])).mode == "LA"
    assert Image.open(io.BytesIO(imaging.encode(arr, alpha, False, "webp", 90)[0])).mode == "RGBA"
    flat = Image.open(io.BytesIO(imaging.encode(arr, np.zeros((8, 8), np.uint8), False, "jpeg", 95)[0]))
    assert flat.mode == "RGB" and np.asarray(flat).min() > 240  # fully transparent -> white background


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_pixels_as_pillow_does(orientation):
    from PIL import ImageOps

    im = Image.fromarray(photo(12, 7))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(im, "PNG", exif=exif.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    d = decode(data)
    assert np.array_equal(d.pixels, want)
    if d.exif is not None:  # the orientation tag itself is not carried over (the pixels are upright now)
        left = Image.Exif()
        left.load(d.exif)
        assert 0x0112 not in left


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_colour_round_trips_with_orientation_and_alpha(fmt):
    import cv2

    rgb = np.random.default_rng(0).integers(0, 65536, (5, 8, 3), dtype=np.uint16)
    alpha = np.full((5, 8), 40000, np.uint16)
    ok, buf = cv2.imencode("." + fmt.lower(), np.dstack([rgb[..., ::-1], alpha]))
    d = decode(buf.tobytes())
    assert d.pixels.dtype == np.uint16 and np.array_equal(d.pixels, rgb) and not d.gray
    assert d.alpha is not None and int(d.alpha[0, 0]) == round(40000 / 257)
    body, media = imaging.encode(d.pixels, d.alpha, d.gray, fmt.lower(), 90)
    back = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back[..., 2::-1], rgb) and media == f"image/{fmt.lower()}"
    body, _ = imaging.encode(d.pixels, None, False, "jpeg", 90)  # formats without 16 bits get 8
    assert Image.open(io.BytesIO(body)).mode == "RGB"


def test_icc_profile_is_carried_over():
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    d = decode(encoded(Image.fromarray(photo(8, 8)), "JPEG", icc_profile=icc))
    assert d.icc == icc
    for fmt in ("png", "jpeg", "webp", "tiff"):
        body, _ = imaging.encode(d.pixels, None, False, fmt, 90, d.icc, d.exif)
        assert Image.open(io.BytesIO(body)).info.get("icc_profile") == icc, fmt


@pytest.mark.parametrize("size,how", [((40, 30), "none"), ((100, 75), "lanczos"), ((30, 22), "area")])
def test_resize_to_an_exact_size(size, how):
    for dtype in (np.uint8, np.uint16):
        px = photo(40, 30).astype(dtype) * (257 if dtype == np.uint16 else 1)
        out, used = imaging.resize(px, size)
        assert out.shape == (size[1], size[0], 3) and out.dtype == dtype and used == how


def test_16bit_colour_png_keeps_icc_and_exif():
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    rgb = np.random.default_rng(0).integers(0, 65536, (5, 8, 3), dtype=np.uint16)
    body, _ = imaging.encode(rgb, None, False, "png", 90, icc, exif.tobytes())
    back = decode(body)
    assert back.pixels.dtype == np.uint16 and np.array_equal(back.pixels, rgb)
    assert back.icc == icc and Image.open(io.BytesIO(body)).getexif()[0x010F] == "TestCam"
