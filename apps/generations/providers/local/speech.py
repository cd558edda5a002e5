"""Offline speech engines, both from PyPI packages that carry their data (nothing is downloaded at run time).

- `local/text-to-speech`: eSpeak NG (the `espeakng-loader` package ships its library and voices), a formant
  synthesizer: clear, robotic speech in many languages. Not a neural voice.
- `local/speech-to-text`: CMU PocketSphinx with its bundled US-English model, a classic statistical recognizer.
  It works offline on clear English speech; its accuracy is far below modern AI transcription.
"""

import ctypes
import io
import logging
import os
import threading
import wave
from functools import cache

from apps.generations.media import media_load
from apps.generations.providers import OutputData, ProviderError, RunResult
from apps.generations.providers.local.ffmpeg import audio_output, ffmpeg, workdir

logger = logging.getLogger(__name__)

# --- local/text-to-speech (eSpeak NG) -------------------------------------------------------------------

# Public voice → eSpeak NG voice name.
VOICES = {
    "en-us": "en-us",
    "en-gb": "en",
    "de": "de",
    "fr": "fr",
    "es": "es",
    "it": "it",
    "pt": "pt",
    "pt-br": "pt-br",
    "nl": "nl",
    "sv": "sv",
    "pl": "pl",
    "ru": "ru",
    "tr": "tr",
    "hi": "hi",
    "ja": "ja",
    "cmn": "cmn",
}
VARIANTS = {"male": "+m3", "female": "+f3"}
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
_POSITION_CHARACTER = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# eSpeak NG keeps one global state per process: one synthesis at a time (the worker runs jobs in threads).
_lock = threading.Lock()
_samples = bytearray()


@_CALLBACK
def _collect(wav, count, events):
    if count > 0 and wav:
        _samples.extend(ctypes.string_at(wav, count * 2))
    return 0  # go on


@cache
def _espeak() -> tuple[ctypes.CDLL, int]:
    try:
        import espeakng_loader

        library = ctypes.CDLL(espeakng_loader.get_library_path())
        data = os.path.dirname(espeakng_loader.get_data_path())
    except (ImportError, OSError) as exc:
        logger.exception("eSpeak NG cannot be loaded")
        raise ProviderError("The speech engine is not installed on this instance.", code="engine_missing") from exc
    library.espeak_Initialize.restype = ctypes.c_int
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
    sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
    if sample_rate <= 0:
        raise ProviderError("The speech engine could not start.", code="engine_missing")
    library.espeak_SetSynthCallback(_collect)
    return library, sample_rate


def synthesize(
    text: str, *, voice: str = "en-us", variant: str = "", speed: int = 175, pitch: int = 50
) -> tuple[bytes, int]:
    """Speaks `text`: 16-bit mono PCM and its sample rate."""
    if voice not in VOICES:
        raise ProviderError(f"The voice {voice!r} is not available.", code="invalid_input")
    name = (VOICES[voice] + VARIANTS.get(variant, "")).encode()
    encoded = text.replace("\x00", " ").encode("utf-8")
    with _lock:
        library, sample_rate = _espeak()  # initialized once, under the lock
        if library.espeak_SetVoiceByName(name) != 0:
            raise ProviderError(f"The voice {voice!r} is not available.", code="invalid_input")
        library.espeak_SetParameter(_RATE, speed, 0)
        library.espeak_SetParameter(_PITCH, pitch, 0)
        _samples.clear()
        # Plain text only (no SSML, no phoneme codes): what the user wrote is read out as it is.
        status = library.espeak_Synth(encoded, len(encoded) + 1, 0, _POSITION_CHARACTER, 0, _CHARS_UTF8, None, None)
        pcm = bytes(_samples)
        _samples.clear()
    if status != 0 or not pcm:
        raise ProviderError("The speech engine could not speak this text.", code="engine_failed")
    return pcm, sample_rate


def text_to_speech(input: dict) -> RunResult:
    text = input["text"]
    pcm, sample_rate = synthesize(
        text,
        voice=input.get("voice", "en-us"),
        variant=input.get("variant", ""),
        speed=input.get("speed", 175),
        pitch=input.get("pitch", 50),
    )
    with workdir() as folder:
        wav_path = folder / "speech.wav"
        with wave.open(str(wav_path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(sample_rate)
            wav.writeframes(pcm)
        if input.get("format", "mp3") == "wav":
            output = audio_output(wav_path, content_type="audio/wav", file_name="speech.wav")
        else:
            mp3_path = folder / "speech.mp3"
            ffmpeg(["-loglevel", "error", "-i", str(wav_path), "-c:a", "libmp3lame", "-b:a", "64k", str(mp3_path)],
                   cwd=folder, what="encode the speech")  # fmt: skip
            output = audio_output(mp3_path, content_type="audio/mpeg", file_name="speech.mp3")
    return RunResult(outputs=[output], usage={"characters": len(text), "seconds": output.duration_seconds})


# --- local/speech-to-text (PocketSphinx) ----------------------------------------------------------------

STT_MAX_SECONDS = 300  # PocketSphinx runs at about a third of real time here: five minutes take a minute or two


def speech_to_text(input: dict) -> RunResult:
    media = media_load(input["audio_url"], kinds={"audio", "video"}, max_seconds=STT_MAX_SECONDS, field="audio_url")
    if not media.has_audio:
        raise ProviderError("audio_url: the file has no audio to transcribe.", code="invalid_media")
    with workdir() as folder:
        source = media.save_to(folder, "in")
        pcm_path = folder / "speech.raw"
        ffmpeg(["-loglevel", "error", *media.ffmpeg_input(source), "-map", "0:a:0", "-vn",
                "-ac", "1", "-ar", "16000", "-f", "s16le", str(pcm_path)],
               cwd=folder, what="read the audio")  # fmt: skip
        pcm = pcm_path.read_bytes()
    text = _recognize(pcm)
    output = OutputData(
        type="text",
        content_type="text/plain",
        file_name="transcript.txt",
        text=text,
        duration_seconds=round(media.duration_seconds, 3),
    )
    usage = {"audio_seconds": round(media.duration_seconds, 3), "words": len(text.split())}
    return RunResult(outputs=[output], usage=usage)


def _recognize(pcm: bytes) -> str:
    try:
        from pocketsphinx import Decoder, Segmenter
    except ImportError as exc:
        raise ProviderError("The speech recognizer is not installed on this instance.", code="engine_missing") from exc
    decoder = Decoder(loglevel="FATAL")  # its default model: US English, 16 kHz
    words = []
    # Voice activity detection first: only the stretches with speech are decoded, one utterance each (decoding
    # silence or noise makes the recognizer hear words that nobody said).
    for segment in Segmenter().segment(io.BytesIO(pcm)):
        decoder.start_utt()
        decoder.process_raw(segment.pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is not None and hypothesis.hypstr:
            words.append(hypothesis.hypstr)
    return " ".join(words).strip()
