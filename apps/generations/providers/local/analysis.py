"""`kiwiwhale/audio-analysis`: what is in a sound file (or a video's sound), measured, as a JSON output.

PyAV reads the stream's format; one ffmpeg pass measures EBU R128 loudness (ebur128: integrated loudness, loudness
range, sample and true peak) and finds silences (silencedetect) at the asked threshold and minimum length.
"""

import json
import math
import re

from apps.generations.media import media_load
from apps.generations.providers import OutputData, ProviderError, RunResult
from apps.generations.providers.local.ffmpeg import ffmpeg, workdir

_NUMBER = r"(-?(?:\d+(?:\.\d+)?|inf))"
_SUMMARY = {
    "integrated_loudness_lufs": re.compile(r"Integrated loudness:\s+I:\s+" + _NUMBER + r" LUFS"),
    "loudness_range_lu": re.compile(r"Loudness range:\s+LRA:\s+" + _NUMBER + r" LU"),
    "sample_peak_dbfs": re.compile(r"Sample peak:\s+Peak:\s+" + _NUMBER + r" dBFS"),
    "true_peak_dbfs": re.compile(r"True peak:\s+Peak:\s+" + _NUMBER + r" dBFS"),
}
_SILENCE_START = re.compile(r"silence_start: " + _NUMBER)
_SILENCE_END = re.compile(r"silence_end: " + _NUMBER)


def run(input: dict) -> RunResult:
    media = media_load(input["audio_url"], kinds={"audio", "video"}, field="audio_url")
    if not media.has_audio:
        raise ProviderError("audio_url: the file has no audio to analyse.", code="invalid_media")
    threshold = input.get("silence_threshold_db", -50)
    min_silence = input.get("silence_min_duration", 0.5)
    with workdir() as folder:
        source = media.save_to(folder, "in")
        log = ffmpeg(
            ["-nostats", "-loglevel", "info", *media.ffmpeg_input(source), "-map", "0:a:0", "-vn",
             "-af", f"ebur128=peak=true+sample:framelog=verbose,silencedetect=noise={threshold}dB:d={min_silence}",
             "-f", "null", "-"],
            cwd=folder,
            what="analyse the audio",
        )  # fmt: skip
    summary = log[log.rfind("Summary:") :] if "Summary:" in log else ""
    measures = {name: _number(pattern.search(summary)) for name, pattern in _SUMMARY.items()}
    duration = round(media.duration_seconds, 3)
    silences = _silences(log, duration)
    data = {
        "duration_seconds": duration,
        "sample_rate": media.sample_rate,
        "channels": media.channels,
        "codec": media.audio_codec,
        "container": media.format,
        "has_video": media.has_video,
        **measures,
        "silence_threshold_db": threshold,
        "silence_min_duration": min_silence,
        "silences": silences,
        "silence_total_seconds": round(sum(s["duration"] for s in silences), 3),
    }
    output = OutputData(
        type="json",
        content_type="application/json",
        file_name="analysis.json",
        content=json.dumps(data, indent=2).encode(),
        data=data,
        duration_seconds=duration,
    )
    return RunResult(outputs=[output], usage={"audio_seconds": duration})


def _number(match) -> float | None:
    """A measured number; None for -inf (digital silence has no loudness or peak) or when absent."""
    if match is None:
        return None
    value = float(match.group(1))
    return round(value, 2) if math.isfinite(value) else None


def _silences(log: str, duration: float) -> list[dict]:
    segments, start = [], None
    for line in log.splitlines():
        if (found := _SILENCE_START.search(line)) is not None:
            start = max(0.0, float(found.group(1)))
        elif (found := _SILENCE_END.search(line)) is not None and start is not None:
            segments.append(_segment(start, float(found.group(1))))
            start = None
    if start is not None:  # silent to the end
        segments.append(_segment(start, duration))
    return segments


def _segment(start: float, end: float) -> dict:
    return {"start": round(start, 3), "end": round(end, 3), "duration": round(max(0.0, end - start), 3)}
