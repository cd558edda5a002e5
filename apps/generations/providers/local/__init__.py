"""Engines that run on the instance itself, with no key and no network: a fresh install can serve them."""

from django.utils.module_loading import import_string

from apps.generations.providers import Provider, ProviderError, RunResult

ENGINES = {
    "upload": "apps.generations.providers.local.upload.run",
    "procedural-image": "apps.generations.providers.local.image.run",
    # The published ffmpeg tools (ffmpeg from imageio-ffmpeg) and the audio analysis.
    "ffmpeg-extract-frame": "apps.generations.providers.local.tools.extract_frame",
    "ffmpeg-merge-videos": "apps.generations.providers.local.tools.merge_videos",
    "ffmpeg-merge-audio-video": "apps.generations.providers.local.tools.merge_audio_video",
    "ffmpeg-normalize-compose": "apps.generations.providers.local.tools.normalize_compose",
    "audio-analysis": "apps.generations.providers.local.analysis.run",
    # Offline engines for every other media kind; none of them is an AI model, and the catalog says so.
    "image-filter": "apps.generations.providers.local.image_filter.run",
    "text-to-video": "apps.generations.providers.local.video.text_to_video",
    "image-to-video": "apps.generations.providers.local.video.image_to_video",
    "text-to-speech": "apps.generations.providers.local.speech.text_to_speech",
    "speech-to-text": "apps.generations.providers.local.speech.speech_to_text",
    "echo-chat": "apps.generations.providers.local.text.echo_chat",
    "text-summary": "apps.generations.providers.local.text.text_summary",
}


class LocalProvider(Provider):
    key = "local"

    def run(self, *, upstream_model: str, params: dict, input: dict) -> RunResult:
        if upstream_model not in ENGINES:
            raise ProviderError(f"The local engine {upstream_model!r} does not exist.", code="engine_missing")
        return import_string(ENGINES[upstream_model])({**params, **input})
