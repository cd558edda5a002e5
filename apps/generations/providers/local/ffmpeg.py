"""Running ffmpeg (the static binary of imageio-ffmpeg) and measuring what it made (PyAV).

ffmpeg runs as a subprocess with an argument list (no shell), in a temporary folder, with a timeout and its
stderr captured. What it prints stays in the log; the user sees a short message.
"""

import contextlib
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings

from apps.generations.providers import OutputData, ProviderError

logger = logging.getLogger(__name__)

FAILED = "ffmpeg_failed"
# H.264 in yuv420p with the index up front: what every browser plays, and starts before it has it all.
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
AAC = ["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]


@cache
def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # the package or its binary is missing
        logger.exception("No ffmpeg binary")
        raise ProviderError("The media engine is not installed on this instance.", code="engine_missing") from exc


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kiwiwhale-media-") as name:
        yield Path(name)


def ffmpeg(args: list[str], *, cwd: Path, timeout: float | None = None, what: str = "process the media") -> str:
    """Runs ffmpeg with `args`; returns its stderr (the log filters such as ebur128 print to)."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    timeout = timeout or settings.MEDIA_TIMEOUT_SECONDS
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, timeout=timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        raise ProviderError(f"ffmpeg took longer than {timeout:g} s to {what}.", code="media_timeout") from exc
    stderr = done.stderr.decode("utf-8", errors="replace")
    if done.returncode != 0:
        logger.warning("ffmpeg failed (%s): %s\n%s", done.returncode, " ".join(command), stderr[-4000:])
        raise ProviderError(f"ffmpeg could not {what}.", code=FAILED)
    return stderr


def ffmpeg_from_frames(
    frames: Iterable[bytes],
    *,
    width: int,
    height: int,
    fps: int,
    output: Path,
    cwd: Path,
    extra: list[str] = (),
    timeout: float | None = None,
) -> None:
    """Encodes raw RGB24 frames, streamed to ffmpeg's stdin, into `output` (H.264 MP4 unless `extra` says)."""
    timeout = timeout or settings.MEDIA_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
               *extra, *H264, str(output)]  # fmt: skip
    with tempfile.TemporaryFile(dir=cwd) as log:
        process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)  # noqa: S603
        try:
            try:
                for frame in frames:
                    if time.monotonic() > deadline:
                        raise ProviderError(f"Encoding took longer than {timeout:g} s.", code="media_timeout")
                    process.stdin.write(frame)
                process.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg stopped early: its exit code and log say why
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(f"Encoding took longer than {timeout:g} s.", code="media_timeout") from exc
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            log.seek(0)
            logger.warning("ffmpeg failed (%s): %s", code, log.read()[-4000:].decode("utf-8", errors="replace"))
            raise ProviderError("ffmpeg could not encode the video.", code=FAILED)


@dataclass
class Probe:
    duration_seconds: float | None
    width: int | None = None
    height: int | None = None
    video_codec: str = ""
    audio_codec: str = ""
    fps: float | None = None


def probe(path: Path) -> Probe:
    """Measures a file ffmpeg made: duration, size and codecs, as a decoder reads them back."""
    import av

    from apps.generations.media import codec_name

    try:
        with av.open(str(path)) as container:
            video = next(iter(container.streams.video), None)
            audio = next(iter(container.streams.audio), None)
            duration = container.duration / av.time_base if container.duration else None
            if duration is None:
                stream = video or audio
                if stream is not None and stream.duration and stream.time_base:
                    duration = float(stream.duration * stream.time_base)
            rate = (video.average_rate or video.guessed_rate) if video is not None else None
            return Probe(
                duration_seconds=round(duration, 3) if duration else None,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
                video_codec=codec_name(video) if video is not None else "",
                audio_codec=codec_name(audio) if audio is not None else "",
                fps=float(rate) if rate else None,
            )
    except (av.FFmpegError, OSError) as exc:
        logger.warning("The engine's own output does not decode: %s", path, exc_info=True)
        raise ProviderError("The engine produced a file that does not decode.", code=FAILED) from exc


def video_output(path: Path, *, file_name: str = "out.mp4") -> OutputData:
    measured = probe(path)
    if not measured.video_codec:
        raise ProviderError("The engine produced no video.", code=FAILED)
    return OutputData(
        type="video",
        content_type="video/mp4",
        file_name=file_name,
        content=path.read_bytes(),
        width=measured.width,
        height=measured.height,
        duration_seconds=measured.duration_seconds,
    )


def audio_output(path: Path, *, content_type: str, file_name: str) -> OutputData:
    measured = probe(path)
    if not measured.audio_codec:
        raise ProviderError("The engine produced no audio.", code=FAILED)
    return OutputData(
        type="audio",
        content_type=content_type,
        file_name=file_name,
        content=path.read_bytes(),
        duration_seconds=measured.duration_seconds,
    )


def even(value: float) -> int:
    """The even number at or below `value` (H.264 in yuv420p needs even sides), at least 2."""
    return max(2, int(value) // 2 * 2)
