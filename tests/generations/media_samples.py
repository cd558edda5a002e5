"""Small media files made by the tests themselves (ffmpeg from imageio-ffmpeg, Pillow), and ways to read them back.

Each sample is made once per test run and kept in a temporary folder. Decoding goes through PyAV and Pillow,
standard decoders independent of the engines' own measurements.
"""

import base64
import io
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import imageio_ffmpeg
from PIL import Image

FOLDER = Path(tempfile.mkdtemp(prefix="kiwiwhale-samples-"))


def _ffmpeg(*args: str, name: str) -> bytes:
    path = FOLDER / name
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path.read_bytes()


@cache
def bars_video() -> bytes:
    """2 s of moving colour bars, 160x120 at 24 fps, with a 440 Hz tone: H.264 + AAC in MP4."""
    return _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=2", "-f", "lavfi", "-i", "sine=f=440:d=2",
                   "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", name="bars.mp4")  # fmt: skip


@cache
def silent_video() -> bytes:
    """1 s of a test pattern, 320x240 at 15 fps, with no audio stream at all: H.264 in MP4."""
    return _ffmpeg("-f", "lavfi", "-i", "testsrc=s=320x240:r=15:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                   name="silent.mp4")  # fmt: skip


@cache
def mpeg4_avi() -> bytes:
    """1 s, 176x144 at 10 fps, MPEG-4 Part 2 in AVI (not H.264): what some tools must re-encode."""
    return _ffmpeg("-f", "lavfi", "-i", "smptebars=s=176x144:r=10:d=1", "-c:v", "mpeg4", name="bars.avi")


@cache
def gap_wav() -> bytes:
    """3 s mono 44.1 kHz WAV: 1 s of 440 Hz, 1 s of digital silence, 1 s of 660 Hz."""
    return _ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=1",
                   "-f", "lavfi", "-i", "sine=f=660:d=1", "-filter_complex", "[0][1][2]concat=n=3:v=0:a=1",
                   name="gap.wav")  # fmt: skip


@cache
def silence_wav() -> bytes:
    """2 s of digital silence, stereo 48 kHz."""
    return _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo:d=2", "-c:a", "pcm_s16le", name="silence.wav")


@cache
def tone_mp3(seconds: int = 2) -> bytes:
    return _ffmpeg("-f", "lavfi", "-i", f"sine=f=330:d={seconds}", "-c:a", "libmp3lame", name=f"tone{seconds}.mp3")


def png(width: int = 200, height: int = 150, *, mode: str = "RGB") -> bytes:
    """A picture with structure (a gradient and a square), so moves and filters show."""
    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    colour = (200, 30, 90) if mode == "RGB" else (200, 30, 90, 128)
    image.paste(colour, (width // 4, height // 4, width // 2, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(content_type: str, content: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(content).decode()}"


@dataclass
class Decoded:
    format: str
    duration: float | None
    video_codec: str = ""
    audio_codec: str = ""
    width: int | None = None
    height: int | None = None
    pix_fmt: str = ""
    fps: Fraction | None = None
    frames: int = 0
    sample_rate: int | None = None
    channels: int | None = None
    audio_seconds: float = 0.0


def decode(content: bytes) -> Decoded:
    """Reads a media file back with PyAV, decoding every frame (counted) and every audio sample (timed)."""
    with av.open(io.BytesIO(content)) as container:
        video = next(iter(container.streams.video), None)
        audio = next(iter(container.streams.audio), None)
        result = Decoded(
            format=container.format.name,
            duration=container.duration / av.time_base if container.duration else None,
            video_codec=video.codec_context.codec.canonical_name if video else "",
            audio_codec=audio.codec_context.codec.canonical_name if audio else "",
            width=video.codec_context.width if video else None,
            height=video.codec_context.height if video else None,
            pix_fmt=(video.codec_context.pix_fmt or "") if video else "",
            fps=video.average_rate if video else None,
            sample_rate=audio.codec_context.sample_rate if audio else None,
            channels=audio.codec_context.channels if audio else None,
        )
        streams = [s for s in (video, audio) if s is not None]
        samples = 0
        for frame in container.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                result.frames += 1
            else:
                samples += frame.samples
        if audio is not None and result.sample_rate:
            result.audio_seconds = samples / result.sample_rate
    return result


def frames(content: bytes) -> list[Image.Image]:
    with av.open(io.BytesIO(content)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two pictures, 0..255."""
    from PIL import ImageChops, ImageStat

    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3
