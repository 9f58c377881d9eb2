"""The attribute caption generator: seeded, reads the colour of the flower, varied."""
from __future__ import annotations

import numpy as np
import pytest

from training.t2i import captions as cap

pytest.importorskip("PIL")


def flower(petal_rgb, centre_rgb=(60, 40, 10), leaf_rgb=(40, 120, 30), size: int = 64) -> np.ndarray:
    """A synthetic flower: green background, a disc of petal colour, a small centre of another colour."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = leaf_rgb
    img[r < size * 0.38] = petal_rgb
    img[r < size * 0.08] = centre_rgb
    return img


COLOURS = {
    "red": (200, 20, 25), "orange": (240, 130, 20), "yellow": (245, 220, 30), "white": (245, 245, 240),
    "purple": (120, 50, 190), "pink": (240, 110, 190), "blue": (40, 80, 220),
}


@pytest.mark.parametrize("name,rgb", COLOURS.items())
def test_dominant_colour_of_a_solid_flower(name, rgb):
    img = flower(rgb)
    assert cap.dominant_colour(img) == name
    m = cap.measure(img)
    assert m["petal"] == name and m["centre"] in ("brown", "orange")  # the dark centre
    for text in cap.captions_for(img, "test flower", 6, seed=0):
        words = {w for w in cap.SYNONYMS[name]}
        assert any(w in text for w in words), text
        other = {c for c in COLOURS if c != name and c not in ("orange",)}  # "orange" may name the centre
        assert not any(f" {c} petals" in f" {text}" for c in other), text


def test_green_leaves_are_not_the_petal_colour():
    img = flower((245, 220, 30), leaf_rgb=(30, 140, 40))
    img[:, :8] = (30, 140, 40)
    assert cap.colour_shares(img).get("green", 0.0) == 0.0
    assert cap.dominant_colour(img) == "yellow"


def test_pale_red_reads_as_pink_and_dark_orange_as_brown():
    assert cap.COLOURS[int(cap.colour_name(cap.rgb_to_hsv(np.array([[250, 170, 180]], np.uint8)))[0])] == "pink"
    assert cap.COLOURS[int(cap.colour_name(cap.rgb_to_hsv(np.array([[100, 50, 10]], np.uint8)))[0])] == "brown"


def test_captions_are_seeded():
    img = flower(COLOURS["purple"], centre_rgb=(250, 230, 40))
    a = cap.captions_for(img, "passion flower", 5, seed=3, index=7)
    assert a == cap.captions_for(img, "passion flower", 5, seed=3, index=7)
    assert a != cap.captions_for(img, "passion flower", 5, seed=4, index=7)
    assert a != cap.captions_for(img, "passion flower", 5, seed=3, index=8)


def test_captions_vary():
    img = flower(COLOURS["pink"], centre_rgb=(250, 230, 40))
    texts = [t for i in range(30) for t in cap.captions_for(img, "sunflower", 4, seed=0, index=i)]
    assert all(len(set(cap.captions_for(img, "sunflower", 4, seed=0, index=i))) == 4 for i in range(30))
    assert len(set(texts)) >= 40  # many templates x colour words x class traits
    assert any("sunflower" in t for t in texts) and any("large" in t for t in texts)  # class name and size word
    assert any("yellow" in t or "golden" in t for t in texts)  # the centre colour
    assert not any(" a a" in t or " a o" in t.replace("a orange", "!") for t in texts)


def test_traits_by_name_word():
    assert cap.traits("canterbury bells")[1] == "bell-shaped"
    assert cap.traits("giant white arum lily")[1] == "trumpet-shaped"
    assert cap.traits("water lily")[1] == "floating, star-shaped"
    assert cap.traits("unknownium") == ("", "")
