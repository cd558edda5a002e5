"""`local/image-filter`: a classic image filter (Pillow) applied to `image_url`, as a PNG.

It is image processing, not an AI model: it does not follow a prompt. `intensity` blends the filtered picture
over the original (1: only the filter). Transparency is kept; pictures wider or taller than 4096 pixels are
scaled down to fit first.
"""

import io

from PIL import Image, ImageFilter, ImageOps

from apps.generations.media import media_load
from apps.generations.providers import OutputData, ProviderError, RunResult

MAX_SIDE = 4096


def _sepia(rgb: Image.Image) -> Image.Image:
    return ImageOps.colorize(ImageOps.grayscale(rgb), black=(40, 26, 13), white=(255, 240, 192), mid=(164, 124, 82))


def _pixelate(rgb: Image.Image) -> Image.Image:
    block = max(2, min(rgb.size) // 48)
    small = rgb.resize((max(1, rgb.width // block), max(1, rgb.height // block)), Image.Resampling.BOX)
    return small.resize(rgb.size, Image.Resampling.NEAREST)


def _vignette(rgb: Image.Image) -> Image.Image:
    mask = Image.radial_gradient("L").resize(rgb.size)  # 0 in the centre, 255 at the rim
    dark = Image.new("RGB", rgb.size, (0, 0, 0))
    return Image.composite(dark, rgb, mask.point(lambda v: int(max(0, v - 96) * 1.4)))


FILTERS = {
    "grayscale": lambda rgb: ImageOps.grayscale(rgb).convert("RGB"),
    "sepia": _sepia,
    "invert": ImageOps.invert,
    "blur": lambda rgb: rgb.filter(ImageFilter.GaussianBlur(radius=max(1, min(rgb.size) / 150))),
    "sharpen": lambda rgb: rgb.filter(ImageFilter.UnsharpMask(radius=2, percent=160, threshold=2)),
    "edge-enhance": lambda rgb: rgb.filter(ImageFilter.EDGE_ENHANCE_MORE),
    "find-edges": lambda rgb: rgb.filter(ImageFilter.FIND_EDGES),
    "emboss": lambda rgb: rgb.filter(ImageFilter.EMBOSS),
    "contour": lambda rgb: rgb.filter(ImageFilter.CONTOUR),
    "posterize": lambda rgb: ImageOps.posterize(rgb, 3),
    "solarize": lambda rgb: ImageOps.solarize(rgb, threshold=128),
    "pixelate": _pixelate,
    "vignette": _vignette,
    "autocontrast": lambda rgb: ImageOps.autocontrast(rgb, cutoff=1),
    "mirror": ImageOps.mirror,
    "flip": ImageOps.flip,
}


def run(input: dict) -> RunResult:
    media = media_load(input["image_url"], kinds={"image"}, field="image_url")
    name = input.get("filter", "sepia")
    if name not in FILTERS:
        raise ProviderError(f"Unknown filter {name!r}.", code="invalid_input")
    intensity = float(input.get("intensity", 1.0))
    with Image.open(io.BytesIO(media.content)) as opened:
        picture = ImageOps.exif_transpose(opened)
        picture.load()
    if max(picture.size) > MAX_SIDE:
        picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    alpha = picture.convert("RGBA").getchannel("A") if has_alpha else None
    rgb = picture.convert("RGB")
    filtered = FILTERS[name](rgb)
    if intensity < 1:
        filtered = Image.blend(rgb, filtered, intensity)
    if alpha is not None:
        filtered.putalpha(alpha)
    buffer = io.BytesIO()
    filtered.save(buffer, format="PNG")
    output = OutputData(
        type="image",
        content_type="image/png",
        file_name="filtered.png",
        content=buffer.getvalue(),
        width=filtered.width,
        height=filtered.height,
    )
    return RunResult(outputs=[output], usage={"filter": name, "pixels": filtered.width * filtered.height})
