"""Offline video engines: real H.264 MP4s (yuv420p, plays in every browser) drawn frame by frame with Pillow.

- `local/text-to-video`: an animated abstract composition derived from the seed and the prompt's length (moving
  shapes on a turning gradient; the prompt is never drawn). The same prompt and seed give the same video. Not an
  AI model.
- `local/image-to-video`: a Ken Burns move (slow zoom or pan) over `image_url`. Not an AI model either.

The frames are streamed to ffmpeg as raw RGB; the output's size and duration are measured from the file.
"""

import io
import math
import random
import secrets
from collections.abc import Iterator

from PIL import Image, ImageDraw, ImageOps

from apps.generations.media import media_load
from apps.generations.providers import RunResult
from apps.generations.providers.local.ffmpeg import even, ffmpeg_from_frames, video_output, workdir
from apps.generations.providers.local.image import _colour, _gradient, composition_digest

MAX_SIDE = 1280


# --- local/text-to-video --------------------------------------------------------------------------------


def text_to_video(input: dict) -> RunResult:
    width, height = even(input.get("width", 640)), even(input.get("height", 360))
    fps, seconds = int(input.get("fps", 24)), float(input.get("duration", 3))
    seed = input.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    count = max(1, round(seconds * fps))
    frames = _animation(input["prompt"], width, height, seed, count)
    with workdir() as folder:
        out = folder / "video.mp4"
        ffmpeg_from_frames(frames, width=width, height=height, fps=fps, output=out, cwd=folder)
        output = video_output(out, file_name="video.mp4")
    return RunResult(outputs=[output], usage={"seed": seed, "seconds": output.duration_seconds, "frames": count})


class _Shape:
    def __init__(self, rng: random.Random, width: int, height: int):
        unit = max(8, min(width, height))
        self.kind = rng.choice(("ellipse", "rectangle", "triangle"))
        self.x, self.y = rng.uniform(0, width), rng.uniform(0, height)
        self.ax, self.ay = rng.uniform(0.1, 0.35) * width, rng.uniform(0.1, 0.35) * height
        self.fx, self.fy = rng.choice((1, 2, 3)), rng.choice((1, 2, 3))  # whole turns per clip: it loops
        self.phase = rng.uniform(0, 2 * math.pi)
        self.radius = rng.uniform(unit * 0.05, unit * 0.25)
        self.fill = (*_colour(rng), rng.randint(90, 190))

    def draw(self, draw: ImageDraw.ImageDraw, t: float) -> None:
        angle = 2 * math.pi * t
        x = self.x + self.ax * math.sin(self.fx * angle + self.phase)
        y = self.y + self.ay * math.cos(self.fy * angle + self.phase)
        r = self.radius * (1 + 0.25 * math.sin(2 * angle + self.phase))
        if self.kind == "ellipse":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=self.fill)
        elif self.kind == "rectangle":
            draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=self.fill)
        else:
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=self.fill)


def _animation(prompt: str, width: int, height: int, seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(composition_digest(prompt, seed))
    start, end = _colour(rng), _colour(rng)
    angle, turn = rng.uniform(0, 360), rng.choice((-1, 1)) * rng.uniform(30, 120)
    shapes = [_Shape(rng, width, height) for _ in range(6 + len(prompt.split()) % 10)]
    for index in range(count):
        t = index / count
        gradient = ImageOps.colorize(_gradient((angle + turn * t) % 360), start, end)
        frame = gradient.resize((width, height), Image.Resampling.BILINEAR).convert("RGBA")
        layer = Image.new("RGBA", frame.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for shape in shapes:
            shape.draw(draw, t)
        frame = Image.alpha_composite(frame, layer)
        yield frame.convert("RGB").tobytes()


# --- local/image-to-video -------------------------------------------------------------------------------


MOTIONS = ("zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down")


def image_to_video(input: dict) -> RunResult:
    media = media_load(input["image_url"], kinds={"image"}, field="image_url")
    with Image.open(io.BytesIO(media.content)) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = _output_size(input, picture.size)
    fps, seconds = int(input.get("fps", 24)), float(input.get("duration", 3))
    motion, zoom = input.get("motion", "zoom-in"), float(input.get("zoom", 1.25))
    count = max(1, round(seconds * fps))
    picture = _prepared(picture, width, height, zoom)
    frames = _ken_burns(picture, width, height, count, motion, zoom)
    with workdir() as folder:
        out = folder / "video.mp4"
        ffmpeg_from_frames(frames, width=width, height=height, fps=fps, output=out, cwd=folder)
        output = video_output(out, file_name="video.mp4")
    return RunResult(outputs=[output], usage={"seconds": output.duration_seconds, "frames": count, "motion": motion})


def _output_size(input: dict, source: tuple[int, int]) -> tuple[int, int]:
    width, height = input.get("width"), input.get("height")
    if width and height:
        return even(width), even(height)
    sw, sh = source
    if width:
        return even(width), even(width * sh / sw)
    if height:
        return even(height * sw / sh), even(height)
    scale = min(1.0, MAX_SIDE / max(sw, sh))
    return even(sw * scale), even(sh * scale)


def _prepared(picture: Image.Image, width: int, height: int, zoom: float) -> Image.Image:
    """The picture scaled down to what the closest frame needs (twice over, for smooth sub-pixel motion)."""
    cover = max(width / picture.width, height / picture.height)  # scale at which the picture just covers
    wanted = min(1.0, 2 * zoom * cover)
    if wanted < 1.0:
        picture = picture.resize(
            (max(1, round(picture.width * wanted)), max(1, round(picture.height * wanted))), Image.Resampling.LANCZOS
        )
    return picture


def _ken_burns(picture: Image.Image, width: int, height: int, count: int, motion: str, zoom: float) -> Iterator[bytes]:
    sw, sh = picture.size
    aspect = width / height
    base_w, base_h = (sw, sw / aspect) if sw / sh < aspect else (sh * aspect, sh)  # the largest box of our shape
    for index in range(count):
        t = index / max(1, count - 1)
        t = t * t * (3 - 2 * t)  # ease in and out
        if motion == "zoom-in":
            scale, fx, fy = 1 + (zoom - 1) * t, 0.5, 0.5
        elif motion == "zoom-out":
            scale, fx, fy = zoom - (zoom - 1) * t, 0.5, 0.5
        else:  # a pan at a fixed zoom: from one side of the picture to the other
            scale = zoom
            fx = {"pan-left": 1 - t, "pan-right": t}.get(motion, 0.5)
            fy = {"pan-up": 1 - t, "pan-down": t}.get(motion, 0.5)
        box_w, box_h = base_w / scale, base_h / scale
        left, top = (sw - box_w) * fx, (sh - box_h) * fy
        frame = picture.resize((width, height), Image.Resampling.BICUBIC, box=(left, top, left + box_w, top + box_h))
        yield frame.tobytes()
