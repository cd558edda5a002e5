"""A procedural text-to-image engine: a real PNG of the asked size, the same picture for the same prompt and seed.

It draws shapes and colours derived from the seed and the prompt's length; it is not an AI model, and the catalog
says so. It never draws the prompt and its pixels never depend on the prompt's words: a prompt kept private on a
published picture cannot be read off it, nor confirmed by re-rendering a guess.
"""

import functools
import hashlib
import io
import math
import random
import secrets

from PIL import Image, ImageDraw, ImageOps

from apps.generations.providers import OutputData, RunResult


def run(input: dict) -> RunResult:
    seed = input.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    outputs = [
        _render(input["prompt"], input["width"], input["height"], seed + index)
        for index in range(input.get("num_images", 1))
    ]
    return RunResult(outputs=outputs, usage={"seed": seed, "images": len(outputs)})


def _render(prompt: str, width: int, height: int, seed: int) -> OutputData:
    digest = composition_digest(prompt, seed)
    rng = random.Random(digest)
    start, end = _colour(rng), _colour(rng)
    gradient = _gradient(rng.uniform(0, 360)).resize((width, height))
    image = ImageOps.colorize(gradient, start, end).convert("RGBA")

    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    unit = max(8, min(width, height))
    for _ in range(6 + len(prompt.split()) % 10):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(unit * 0.05, unit * 0.35)
        fill = (*_colour(rng), rng.randint(60, 170))
        shape = rng.choice(("ellipse", "rectangle", "triangle"))
        if shape == "ellipse":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        elif shape == "rectangle":
            draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=fill)
        else:
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=fill)
    image = Image.alpha_composite(image, layer)

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", optimize=False)
    return OutputData(
        type="image",
        content_type="image/png",
        file_name="out.png",
        content=buffer.getvalue(),
        width=width,
        height=height,
    )


_GRADIENT_SIDE = 384


@functools.cache
def _gradient_square() -> Image.Image:
    return Image.linear_gradient("L").resize((_GRADIENT_SIDE, _GRADIENT_SIDE))  # never changed: rotate() copies


def _gradient(angle: float) -> Image.Image:
    """A 256x256 linear gradient at `angle` degrees, from 0 to 255, with no empty corners."""
    # Rotating the square gradient itself leaves its corners empty (black). Rotate one large enough that its
    # inscribed circle (radius 192) covers the centre 256x256 square (half-diagonal 181), then cut that out.
    side = _GRADIENT_SIDE
    offset = (side - 256) // 2
    if angle % 90 == 0:  # rotate()'s exact cases: a copy or a transpose
        rotated = _gradient_square().rotate(angle, resample=Image.Resampling.BILINEAR)
        return ImageOps.autocontrast(rotated.crop((offset, offset, offset + 256, offset + 256)))
    # Otherwise rotate() is one affine transform about the centre: the same transform, moved by the offset,
    # samples only the centre square (256² pixels instead of 384²) at the same points, so the same pixels.
    radians = -math.radians(angle)
    a, b = round(math.cos(radians), 15), round(math.sin(radians), 15)
    d, e = -b, a
    centre = side / 2
    c = a * -centre + b * -centre + centre + a * offset + b * offset
    f = d * -centre + e * -centre + centre + d * offset + e * offset
    square = _gradient_square().transform(
        (256, 256), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR
    )
    return ImageOps.autocontrast(square)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)


def composition_digest(prompt: str, seed: int) -> bytes:
    """The randomness of a composition: the seed and how many words the prompt has, never which words."""
    return hashlib.sha256(f"{seed}\x00{len(prompt.split())}".encode()).digest()
