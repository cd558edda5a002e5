"""The published ffmpeg tools, run locally: extract a frame, merge videos, put audio on a video, normalize/compose.

Each loads its media inputs through apps.generations.media (own outputs, uploads, safe public URLs; caps),
runs ffmpeg in a temporary folder and returns the file with its size and duration as a decoder measures them.
"""

import io

from django.conf import settings
from PIL import Image

from apps.generations.media import Media, media_load
from apps.generations.providers import OutputData, ProviderError, RunResult
from apps.generations.providers.local.ffmpeg import AAC, H264, even, ffmpeg, video_output, workdir

VIDEO = frozenset({"video"})
AUDIO_OR_VIDEO = frozenset({"audio", "video"})
MAX_SIDE = 1920
MAX_FPS = 60
DEFAULT_FPS = 30


# --- ffmpeg/extract-frame -------------------------------------------------------------------------------


def extract_frame(input: dict) -> RunResult:
    """The first, middle or last frame of `video_url`, as a PNG."""
    video = media_load(input["video_url"], kinds=VIDEO, field="video_url")
    which = input.get("frame", "first")
    with workdir() as folder:
        source = video.save_to(folder, "in")
        out = folder / "frame.png"
        if which == "last":
            # Decode the last seconds and keep overwriting one picture: what remains is the last frame.
            seek = ["-sseof", "-3"] if video.duration_seconds and video.duration_seconds > 3 else []
            args = [*seek, *video.ffmpeg_input(source), "-map", "0:v:0", "-update", "1", "-an", str(out)]
        else:
            start = (video.duration_seconds or 0) / 2 if which == "middle" else 0
            args = ["-ss", f"{start:.3f}", *video.ffmpeg_input(source), "-map", "0:v:0", "-frames:v", "1", str(out)]
        ffmpeg(["-loglevel", "error", *args], cwd=folder, what="extract a frame from the video")
        if not out.exists():
            raise ProviderError("The video has no frame to extract.", code="invalid_media")
        content = out.read_bytes()
    with Image.open(io.BytesIO(content)) as image:
        width, height = image.size
    output = OutputData(
        type="image", content_type="image/png", file_name="frame.png", content=content, width=width, height=height
    )
    return RunResult(outputs=[output], usage={"frame": which, "video_seconds": video.duration_seconds})


# --- ffmpeg/merge-videos --------------------------------------------------------------------------------


def merge_videos(input: dict) -> RunResult:
    """`video_urls` one after another in one MP4, each scaled and padded to a common size and frame rate."""
    urls = input["video_urls"]
    videos = [media_load(url, kinds=VIDEO, field=f"video_urls.{i}") for i, url in enumerate(urls)]
    total = sum(v.duration_seconds or 0 for v in videos)
    if total > _max_seconds():
        raise ProviderError(
            f"The videos last {total:.1f} s together; at most {_max_seconds():g} s.", code="invalid_media"
        )
    width, height = _target_size(input, videos[0])
    fps = input.get("fps") or _fps(videos[0])
    with_audio = any(v.has_audio for v in videos)
    args, filters, labels = [], [], []
    for i, video in enumerate(videos):
        args += video.ffmpeg_input(f"in{i}{video.extension}")
        filters.append(f"[{i}:v:0]{_fit(width, height, 'contain')},fps={fps},format=yuv420p,setpts=PTS-STARTPTS[v{i}]")
        labels.append(f"[v{i}]")
        if with_audio:
            # Every segment needs audio for concat: an input without any gets silence as long as its video,
            # and each sound is padded or cut to its video's length so that picture and sound stay together.
            source = f"[{i}:a:0]" if video.has_audio else "anullsrc=r=48000:cl=stereo,"
            filters.append(
                f"{source}aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
                f"apad,atrim=duration={video.duration_seconds:.3f},asetpts=PTS-STARTPTS[a{i}]"
            )
            labels.append(f"[a{i}]")
    filters.append(f"{''.join(labels)}concat=n={len(videos)}:v=1:a={int(with_audio)}[v]{'[a]' if with_audio else ''}")
    with workdir() as folder:
        for i, video in enumerate(videos):
            video.save_to(folder, f"in{i}")
        out = folder / "merged.mp4"
        maps = ["-map", "[v]", *(["-map", "[a]", *AAC] if with_audio else [])]
        ffmpeg(
            ["-loglevel", "error", *args, "-filter_complex", ";".join(filters), *maps, *H264, str(out)],
            cwd=folder,
            what="merge the videos",
        )
        output = video_output(out, file_name="merged.mp4")
    return RunResult(outputs=[output], usage={"videos": len(videos), "seconds": output.duration_seconds})


# --- ffmpeg-api/merge-audio-video -----------------------------------------------------------------------


def merge_audio_video(input: dict) -> RunResult:
    """`video_url` with its sound replaced by `audio_url`'s, cut to the shorter of the two."""
    video = media_load(input["video_url"], kinds=VIDEO, field="video_url")
    audio = media_load(input["audio_url"], kinds=AUDIO_OR_VIDEO, field="audio_url")
    if not audio.has_audio:
        raise ProviderError("audio_url: the file has no audio.", code="invalid_media")
    # H.264 goes into the MP4 as it is; any other video codec is re-encoded so that browsers play it.
    video_codec = ["-c:v", "copy"] if video.video_codec == "h264" else H264
    with workdir() as folder:
        video_path, audio_path = video.save_to(folder, "video"), audio.save_to(folder, "audio")
        out = folder / "merged.mp4"
        ffmpeg(
            ["-loglevel", "error", *video.ffmpeg_input(video_path), *audio.ffmpeg_input(audio_path),
             "-map", "0:v:0", "-map", "1:a:0", *video_codec, *AAC, "-shortest", "-movflags", "+faststart", str(out)],
            cwd=folder,
            what="merge the audio and the video",
        )  # fmt: skip
        output = video_output(out, file_name="merged.mp4")
    return RunResult(outputs=[output], usage={"seconds": output.duration_seconds})


# --- ffmpeg/normalize-compose ---------------------------------------------------------------------------


def normalize_compose(input: dict) -> RunResult:
    """Conforms `video_url` to a size and frame rate, mixes `audio_url` under its sound, and normalizes loudness.

    - The picture is scaled to `width`x`height` (default: the video's own size), letterboxed (`fit` "contain") or
      cropped (`fit` "cover"), at `fps` (default: the video's own, at most 60), H.264 yuv420p.
    - The sound is the video's own, with `audio_url` (music, a voice-over) mixed under it at `background_volume`;
      or `audio_url` alone when the video is silent. It lasts as long as the video.
    - That sound is normalized to `loudness_lufs` integrated loudness (EBU R128, ffmpeg's loudnorm) with a true
      peak of at most `true_peak_db`, then encoded as AAC 48 kHz stereo. A video with no sound and no
      `audio_url` comes out silent.
    """
    video = media_load(input["video_url"], kinds=VIDEO, field="video_url")
    background = None
    if input.get("audio_url"):
        background = media_load(input["audio_url"], kinds=AUDIO_OR_VIDEO, field="audio_url")
        if not background.has_audio:
            raise ProviderError("audio_url: the file has no audio.", code="invalid_media")
    width, height = _target_size(input, video)
    fps = input.get("fps") or _fps(video)
    lufs, peak = input.get("loudness_lufs", -16), input.get("true_peak_db", -1.5)
    volume = input.get("background_volume", 0.3)
    seconds = f"{video.duration_seconds:.3f}"
    fmt = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"
    filters = [f"[0:v:0]{_fit(width, height, input.get('fit', 'contain'))},fps={fps},format=yuv420p[v]"]
    if video.has_audio and background is not None:
        filters.append(f"[0:a:0]{fmt}[own]")
        filters.append(f"[1:a:0]{fmt},volume={volume}[bed]")
        filters.append("[own][bed]amix=inputs=2:duration=first:dropout_transition=0:normalize=0[mix]")
        mixed = "[mix]"
    elif video.has_audio:
        mixed = "[0:a:0]"
    elif background is not None:
        mixed = "[1:a:0]"
    else:
        mixed = None
    if mixed:
        # loudnorm works at 192 kHz internally; resample back. apad+atrim: the sound lasts as long as the video.
        filters.append(
            f"{mixed}{fmt if mixed != '[mix]' else 'anull'},loudnorm=I={lufs}:TP={peak}:LRA=11,{fmt},"
            f"apad,atrim=duration={seconds}[a]"
        )
    with workdir() as folder:
        inputs = video.ffmpeg_input(video.save_to(folder, "video"))
        if background is not None:
            inputs += background.ffmpeg_input(background.save_to(folder, "audio"))
        out = folder / "composed.mp4"
        maps = ["-map", "[v]", *(["-map", "[a]", *AAC] if mixed else [])]
        ffmpeg(
            ["-loglevel", "error", *inputs, "-filter_complex", ";".join(filters), *maps, *H264, str(out)],
            cwd=folder,
            what="normalize and compose the video",
        )
        output = video_output(out, file_name="composed.mp4")
    usage = {"seconds": output.duration_seconds, "loudness_lufs": lufs, "audio": bool(mixed)}
    return RunResult(outputs=[output], usage=usage)


# --- shared ---------------------------------------------------------------------------------------------


def _target_size(input: dict, video: Media) -> tuple[int, int]:
    width, height = input.get("width"), input.get("height")
    source_w, source_h = video.width or 1280, video.height or 720
    if width and not height:
        height = source_h * width / source_w
    elif height and not width:
        width = source_w * height / source_h
    elif not width and not height:
        width, height = source_w, source_h
    scale = min(1.0, MAX_SIDE / max(width, height))
    return even(width * scale), even(height * scale)


def _fps(video: Media) -> int:
    if not video.fps or video.fps <= 0:
        return DEFAULT_FPS
    return max(1, min(MAX_FPS, round(video.fps)))


def _fit(width: int, height: int, fit: str) -> str:
    if fit == "cover":
        return f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1"
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1"
    )


def _max_seconds() -> float:
    return settings.MEDIA_MAX_SECONDS
