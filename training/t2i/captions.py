"""Attribute captions: class name + colours measured on the image -> varied sentences a person might write.

Colours are measured in HSV on the central region of the photo (where the flower is), leaving out green
(leaves, stems) and near-black background: the most common colour name there is the petal colour, the
second (if it covers enough of the region) the secondary colour, and the colour of the innermost patch the
centre's. Size and shape words come from what the class implies (sunflowers are large, bluebells
bell-shaped). Every choice is drawn from a generator seeded by (seed, image index): the same call gives the
same captions.

``colour_name`` / ``dominant_colour`` are also what the evaluation uses to read the colour of a generated
flower, so captions and the colour check speak the same language.
"""
from __future__ import annotations

import re

import numpy as np

# Canonical colour names (the words the colour check uses) and how people write them.
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "brown", "black")
SYNONYMS = {
    "red": ["red", "red", "red", "crimson", "scarlet"],
    "orange": ["orange", "orange", "orange", "tangerine"],
    "yellow": ["yellow", "yellow", "yellow", "golden", "lemon yellow"],
    "green": ["green", "green", "lime green"],
    "blue": ["blue", "blue", "sky blue"],
    "purple": ["purple", "purple", "purple", "violet", "lavender"],
    "pink": ["pink", "pink", "pink", "rose pink", "magenta"],
    "white": ["white", "white", "white", "cream", "snow white"],
    "brown": ["brown", "brown", "dark brown"],
    "black": ["black", "dark"],
}
LIGHT, BRIGHT, DARK = ["pale", "light", "soft"], ["bright", "vivid", "rich"], ["dark", "deep"]


def rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    """uint8 or [0,1] float RGB [...,3] -> HSV with hue in degrees [0,360), saturation and value in [0,1]."""
    x = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx, mn = x.max(-1), x.min(-1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)) * 60.0
    h = np.where(d > 0, h, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([h % 360.0, s, mx], -1)


def colour_name(hsv: np.ndarray) -> np.ndarray:
    """Canonical colour name index (into COLOURS) of each HSV pixel."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    idx = np.full(h.shape, COLOURS.index("red"), np.int64)
    idx[(h >= 15) & (h < 42)] = COLOURS.index("orange")
    idx[(h >= 42) & (h < 70)] = COLOURS.index("yellow")
    idx[(h >= 70) & (h < 165)] = COLOURS.index("green")
    idx[(h >= 165) & (h < 250)] = COLOURS.index("blue")
    idx[(h >= 250) & (h < 295)] = COLOURS.index("purple")
    idx[(h >= 295) & (h < 340)] = COLOURS.index("pink")
    reddish = (h < 15) | (h >= 340)
    idx[reddish & (s < 0.5) & (v > 0.55)] = COLOURS.index("pink")  # a washed-out red reads as pink
    idx[(reddish | ((h >= 15) & (h < 42))) & (v < 0.45) & (s > 0.3)] = COLOURS.index("brown")
    idx[(s < 0.2) & (v >= 0.6)] = COLOURS.index("white")
    idx[v < 0.2] = COLOURS.index("black")
    return idx


def central(img: np.ndarray, frac: float = 0.5) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = max(1, round(h * frac)), max(1, round(w * frac))
    y, x = (h - ch) // 2, (w - cw) // 2
    return img[y : y + ch, x : x + cw]


def colour_shares(img: np.ndarray, frac: float = 0.5, drop=("green", "black")) -> dict[str, float]:
    """Share of each colour name among the pixels of the central region, without foliage and background."""
    names = colour_name(rgb_to_hsv(central(img, frac))).ravel()
    keep = ~np.isin(names, [COLOURS.index(c) for c in drop])
    names = names[keep] if keep.sum() >= max(4, 0.1 * names.size) else names  # nothing but leaves: use all
    counts = np.bincount(names, minlength=len(COLOURS)) / max(1, names.size)
    return {COLOURS[i]: float(c) for i, c in enumerate(counts) if c > 0}


def dominant_colour(img: np.ndarray, frac: float = 0.5) -> str:
    """The petal colour of a flower photo: the most common colour name of its central region."""
    shares = colour_shares(img, frac)
    return max(shares, key=shares.get)


def measure(img: np.ndarray) -> dict:
    """Petal colour, secondary colour (None if under 15% of the region), centre colour, and a brightness word."""
    shares = colour_shares(img)
    ranked = sorted(shares, key=shares.get, reverse=True)
    petal = ranked[0]
    secondary = ranked[1] if len(ranked) > 1 and shares[ranked[1]] >= 0.15 else None
    centre = dominant_colour(central(img, 0.12), 1.0)
    hsv = rgb_to_hsv(central(img))
    mask = colour_name(hsv) == COLOURS.index(petal)
    s, v = (float(np.median(hsv[..., i][mask])) for i in (1, 2))
    tone = "dark" if v < 0.45 else "light" if (s < 0.45 and petal not in ("white", "black")) else "bright" if s > 0.7 and v > 0.7 else ""
    return {"petal": petal, "secondary": secondary, "centre": centre, "tone": tone, "shares": shares}


# What a class name implies about size and shape (by a word in the name or the whole name).
TRAITS = {
    "sunflower": ("large", "with a big dark center"), "lily": ("tall", "trumpet-shaped"), "daisy": ("", "with many thin rays"),
    "rose": ("", "with layered, ruffled petals"), "orchid": ("delicate", "with an open, lipped bloom"),
    "bells": ("small", "bell-shaped"), "bell": ("small", "bell-shaped"), "poppy": ("", "with papery, cupped petals"),
    "iris": ("tall", "with drooping falls"), "thistle": ("spiky", "with a round, spiny head"), "dahlia": ("large", "with dense rows of petals"),
    "marigold": ("", "with frilly, crowded petals"), "tulip": ("", "cup-shaped"), "crocus": ("small", "cup-shaped"),
    "lotus": ("large", "with broad, open petals"), "magnolia": ("large", "with thick, waxy petals"),
    "foxglove": ("tall", "with tubular, spotted bells"), "snapdragon": ("tall", "with a spike of small blooms"),
    "dandelion": ("small", "with a dense head of thin petals"), "buttercup": ("small", "with shiny, rounded petals"),
    "hibiscus": ("large", "with a long stamen column"), "anemone": ("", "with rounded petals around a knob of stamens"),
    "passion flower": ("", "with a crown of thin filaments"), "hyacinth": ("small", "with clusters of tiny bells"),
    "morning glory": ("", "funnel-shaped"), "petunia": ("", "funnel-shaped"), "carnation": ("", "with fringed petals"),
    "protea": ("large", "with a cone of pointed bracts"), "water lily": ("", "floating, star-shaped"),
    "bird of paradise": ("tall", "with pointed, beak-like petals"), "columbine": ("", "with long spurs"),
    "clematis": ("", "star-shaped"), "pansy": ("small", "with a dark blotch"), "camellia": ("", "with rounded, layered petals"),
    "cyclamen": ("small", "with swept-back petals"), "frangipani": ("", "with five waxy petals"), "aster": ("", "with many thin rays"),
    "coneflower": ("", "with drooping petals around a spiky cone"), "gazania": ("", "with striped rays"),
    "primrose": ("small", "with five notched petals"), "geranium": ("small", "with five rounded petals"),
    "azalea": ("", "with funnel-shaped blooms in clusters"), "bougainvillea": ("", "with papery bracts"),
    "mallow": ("", "with five broad petals"), "artichoke": ("large", "with a spiky purple tuft"), "anthurium": ("", "with a glossy, heart-shaped spathe"),
}


def traits(class_name: str) -> tuple[str, str]:
    name = class_name.lower()
    if name in TRAITS:
        return TRAITS[name]
    for word in sorted(TRAITS, key=len, reverse=True):
        if word in name:
            return TRAITS[word]
    return "", ""


TEMPLATES = [
    "this flower has {p} petals and a {c} center",
    "a {name} with {p} petals",
    "the petals of this flower are {p}",
    "this flower is {p} in color, {shape}",
    "a {size} {p} flower {shape}",
    "this {name} has {p} petals and a {c} center",
    "the flower shown has {p} petals with {s} accents",
    "{p} petals surround the {c} center of this flower",
    "a close up of a {p} {name}",
    "this flower has {size} {p} petals",
    "a {p} flower with a {c} center",
    "this {size} flower has petals that are {p} and {s}",
    "this is a {name}, a {p} flower {shape}",
    "the {name} has {p} and {s} petals",
    "a picture of a {p} flower",
    "this flower has petals that are mostly {p} with some {s}",
    "bright and open, this {name} shows off its {p} petals",
    "a {p} {name} {shape}",
]


def colour_phrase(colour: str, tone: str, rng: np.random.Generator) -> str:
    word = str(rng.choice(SYNONYMS[colour]))
    if " " in word or word in ("crimson", "scarlet", "golden", "tangerine", "lavender", "magenta", "cream", "dark"):
        return word
    mods = {"light": LIGHT, "bright": BRIGHT, "dark": DARK}.get(tone, [])
    if mods and colour not in ("white", "black") and rng.random() < 0.6:
        return f"{rng.choice(mods)} {word}"
    return word


def captions_for(img: np.ndarray, class_name: str, n: int, seed: int, index: int = 0) -> list[str]:
    """``n`` distinct-as-possible captions of one image (seeded by (seed, index))."""
    rng = np.random.default_rng([seed, index])
    m = measure(img)
    size, shape = traits(class_name)
    out: list[str] = []
    order = rng.permutation(len(TEMPLATES))
    for t in order:
        template = TEMPLATES[t]
        if ("{s}" in template and not m["secondary"]) or ("{shape}" in template and not shape) or ("{size}" in template and not size):
            continue
        if "{c}" in template and m["centre"] == m["petal"]:
            continue
        text = template.format(
            p=colour_phrase(m["petal"], m["tone"], rng), s=m["secondary"] or "", c=str(rng.choice(SYNONYMS[m["centre"]])),
            name=class_name.lower(), size=size, shape=shape,
        )
        text = re.sub(r"\ba (?=[aeiou])", "an ", " ".join(text.split()))
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out
