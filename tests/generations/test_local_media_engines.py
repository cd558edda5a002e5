"""The local media engines: each makes a real file that PyAV or Pillow reads back as promised.

Inputs are media the tests make with ffmpeg and Pillow (tests/generations/media_samples.py), passed as data:
URLs; reading own outputs from storage is covered in test_media_inputs.py and end to end in the integration
test of every category.
"""

import io
import json
from decimal import Decimal

import pytest
from PIL import Image, ImageChops

from apps.catalog.models import AIModel
from apps.catalog.services import CATALOG_FILE, input_validate
from apps.generations.providers import ProviderError
from apps.generations.providers.local import ENGINES, LocalProvider, analysis, image_filter, speech, text, tools, video
from tests.generations.media_samples import (
    bars_video,
    data_url,
    decode,
    difference,
    frames,
    gap_wav,
    mpeg4_avi,
    png,
    silence_wav,
    silent_video,
    tone_mp3,
)

BARS = data_url("video/mp4", bars_video())
SILENT = data_url("video/mp4", silent_video())
AVI = data_url("video/x-msvideo", mpeg4_avi())
GAP = data_url("audio/wav", gap_wav())
PNG = data_url("image/png", png(200, 150))


def _only(result):
    [output] = result.outputs
    return output


def _picture(output) -> Image.Image:
    return Image.open(io.BytesIO(output.content))


def _assert_measured(output, decoded):
    """The output's width/height/duration are what a decoder reads from the file."""
    assert (output.width, output.height) == (decoded.width, decoded.height)
    assert output.duration_seconds == pytest.approx(decoded.duration, abs=0.01)


def _analyse(content: bytes, content_type: str = "video/mp4", **input) -> dict:
    return _only(analysis.run({"audio_url": data_url(content_type, content), **input})).data


# --- ffmpeg/extract-frame -------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "index"), [("first", 0), ("middle", 24), ("last", 47)])
def test_extract_frame_takes_the_asked_frame_as_a_png(which, index):
    output = _only(tools.extract_frame({"video_url": BARS, "frame": which}))
    picture = _picture(output)
    assert picture.format == "PNG" and picture.size == (160, 120)
    assert (output.type, output.content_type, output.width, output.height) == ("image", "image/png", 160, 120)
    # The moving bars make each frame different: the PNG is closest to the decoder's frame at that index.
    decoded = frames(bars_video())
    assert len(decoded) == 48
    distances = [difference(picture, frame) for frame in decoded]
    assert distances[index] < 3
    assert min(range(len(distances)), key=distances.__getitem__) in (index - 1, index, index + 1)


def test_extract_frame_defaults_to_the_first_and_reads_other_codecs():
    output = _only(tools.extract_frame({"video_url": AVI}))
    assert _picture(output).size == (176, 144)
    assert _only(tools.extract_frame({"video_url": AVI, "frame": "last"})).width == 176


def test_extract_frame_refuses_what_is_not_a_video():
    with pytest.raises(ProviderError) as raised:
        tools.extract_frame({"video_url": PNG})
    assert raised.value.code == "invalid_media" and "video_url" in raised.value.message


# --- ffmpeg/merge-videos --------------------------------------------------------------------------------


def test_merge_videos_joins_them_at_the_first_ones_size_with_silence_for_a_silent_one():
    output = _only(tools.merge_videos({"video_urls": [BARS, SILENT]}))
    decoded = decode(output.content)
    assert (output.type, output.content_type) == ("video", "video/mp4")
    assert (decoded.video_codec, decoded.audio_codec, decoded.pix_fmt) == ("h264", "aac", "yuv420p")
    assert (decoded.width, decoded.height, decoded.fps) == (160, 120, 24)
    assert decoded.duration == pytest.approx(3.0, abs=0.1)
    assert decoded.frames == 72  # 2 s + 1 s at 24 fps
    assert decoded.audio_seconds == pytest.approx(3.0, abs=0.1)
    _assert_measured(output, decoded)
    # The tone of the first part, then the silence given to the second.
    silences = _analyse(output.content)["silences"]
    assert len(silences) == 1 and silences[0]["start"] == pytest.approx(2.0, abs=0.1)


def test_merge_videos_without_any_audio_makes_a_silent_video_at_the_asked_size_and_rate():
    output = _only(tools.merge_videos({"video_urls": [SILENT, AVI, SILENT], "width": 128, "height": 96, "fps": 10}))
    decoded = decode(output.content)
    assert (decoded.video_codec, decoded.audio_codec) == ("h264", "")
    assert (decoded.width, decoded.height, decoded.fps, decoded.frames) == (128, 96, 10, 30)
    assert decoded.duration == pytest.approx(3.0, abs=0.1)


def test_merge_videos_names_the_bad_input():
    with pytest.raises(ProviderError) as raised:
        tools.merge_videos({"video_urls": [BARS, GAP]})
    assert raised.value.code == "invalid_media" and raised.value.message.startswith("video_urls.1: ")


# --- ffmpeg-api/merge-audio-video -----------------------------------------------------------------------


def test_merge_audio_video_puts_the_audio_on_the_video_cut_to_the_shorter():
    output = _only(tools.merge_audio_video({"video_url": BARS, "audio_url": GAP}))
    decoded = decode(output.content)
    assert (decoded.video_codec, decoded.audio_codec, decoded.width, decoded.height) == ("h264", "aac", 160, 120)
    assert decoded.duration == pytest.approx(2.0, abs=0.1)
    _assert_measured(output, decoded)
    # The new sound, not the old tone: the gap's silence starts at 1 s.
    silences = _analyse(output.content)["silences"]
    assert silences and silences[0]["start"] == pytest.approx(1.0, abs=0.1)


def test_merge_audio_video_gives_a_silent_video_sound_and_re_encodes_other_codecs():
    output = _only(tools.merge_audio_video({"video_url": AVI, "audio_url": data_url("audio/mpeg", tone_mp3())}))
    decoded = decode(output.content)
    assert (decoded.video_codec, decoded.audio_codec, decoded.pix_fmt) == ("h264", "aac", "yuv420p")
    assert decoded.duration == pytest.approx(1.0, abs=0.15)
    assert decoded.audio_seconds > 0.8


def test_merge_audio_video_takes_the_sound_of_a_video_and_refuses_a_soundless_one():
    output = _only(tools.merge_audio_video({"video_url": SILENT, "audio_url": BARS}))
    assert decode(output.content).audio_codec == "aac"
    with pytest.raises(ProviderError) as raised:
        tools.merge_audio_video({"video_url": BARS, "audio_url": SILENT})
    assert raised.value.code == "invalid_media" and "no audio" in raised.value.message


# --- ffmpeg/normalize-compose ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-12, -30])
def test_normalize_compose_brings_the_loudness_to_the_target(target):
    before = _analyse(bars_video())["integrated_loudness_lufs"]
    output = _only(tools.normalize_compose({"video_url": BARS, "loudness_lufs": target}))
    decoded = decode(output.content)
    assert (decoded.video_codec, decoded.audio_codec, decoded.width, decoded.height) == ("h264", "aac", 160, 120)
    assert decoded.duration == pytest.approx(2.0, abs=0.1)
    measured = _analyse(output.content)
    assert abs(before - target) > 3
    assert measured["integrated_loudness_lufs"] == pytest.approx(target, abs=1.0)
    assert measured["true_peak_dbfs"] <= -1.0


def test_normalize_compose_mixes_the_audio_under_the_video_and_cuts_it_to_the_video():
    alone = _only(tools.normalize_compose({"video_url": BARS}))
    mixed = _only(tools.normalize_compose({"video_url": BARS, "audio_url": GAP, "background_volume": 1.0}))
    assert decode(mixed.content).audio_seconds == pytest.approx(2.0, abs=0.1)
    assert alone.content != mixed.content
    # Normalized both times, but the mix has the 660 Hz part and gap of the background in it: not the same sound.
    assert _analyse(mixed.content)["integrated_loudness_lufs"] == pytest.approx(-16, abs=1.0)


def test_normalize_compose_uses_the_audio_alone_for_a_silent_video_and_conforms_the_picture():
    output = _only(
        tools.normalize_compose(
            {"video_url": SILENT, "audio_url": GAP, "width": 160, "height": 90, "fps": 12, "fit": "cover"}
        )
    )
    decoded = decode(output.content)
    assert (decoded.width, decoded.height, decoded.fps, decoded.frames) == (160, 90, 12, 12)
    assert decoded.audio_codec == "aac"
    assert decoded.audio_seconds == pytest.approx(1.0, abs=0.1)
    _assert_measured(output, decoded)


def test_normalize_compose_of_a_silent_video_without_audio_stays_silent():
    output = _only(tools.normalize_compose({"video_url": SILENT, "width": 100}))
    decoded = decode(output.content)
    assert (decoded.width, decoded.height, decoded.audio_codec) == (100, 74, "")  # 4:3, even sides


def test_normalize_compose_letterboxes_with_contain():
    output = _only(tools.normalize_compose({"video_url": SILENT, "width": 320, "height": 120}))
    first = frames(output.content)[0]
    assert first.size == (320, 120)
    assert max(first.getpixel((5, 60))) < 20  # black bars on the sides


# --- kiwiwhale/audio-analysis ---------------------------------------------------------------------------


def test_audio_analysis_measures_format_loudness_peaks_and_silence():
    output = _only(analysis.run({"audio_url": GAP}))
    assert (output.type, output.content_type) == ("json", "application/json")
    assert json.loads(output.content) == output.data
    data = output.data
    assert (data["sample_rate"], data["channels"], data["codec"], data["container"]) == (44100, 1, "pcm_s16le", "wav")
    assert data["duration_seconds"] == pytest.approx(3.0, abs=0.01) == output.duration_seconds
    # ffmpeg's sine source has amplitude 1/8: a peak of 20·log10(1/8) = -18.06 dBFS.
    assert data["sample_peak_dbfs"] == pytest.approx(-18.1, abs=0.2)
    assert data["sample_peak_dbfs"] <= data["true_peak_dbfs"] + 0.05
    assert -26 < data["integrated_loudness_lufs"] < -18
    [silence] = data["silences"]
    assert silence["start"] == pytest.approx(1.0, abs=0.05) and silence["end"] == pytest.approx(2.0, abs=0.05)
    assert data["silence_total_seconds"] == pytest.approx(1.0, abs=0.05)


def test_audio_analysis_follows_its_silence_settings():
    assert _only(analysis.run({"audio_url": GAP, "silence_min_duration": 1.5})).data["silences"] == []
    # At -10 dB the -18 dBFS tones count as silence too: one silence, the whole file.
    [everything] = _only(analysis.run({"audio_url": GAP, "silence_threshold_db": -10})).data["silences"]
    assert everything["start"] == 0 and everything["end"] == pytest.approx(3.0, abs=0.05)


def test_audio_analysis_of_digital_silence_reports_no_loudness_and_silence_to_the_end():
    data = _analyse(silence_wav(), "audio/wav")
    assert (data["sample_rate"], data["channels"]) == (48000, 2)
    assert data["sample_peak_dbfs"] is None and data["true_peak_dbfs"] is None
    assert data["integrated_loudness_lufs"] is None or data["integrated_loudness_lufs"] <= -70
    assert data["silences"] == [{"start": 0.0, "end": 2.0, "duration": 2.0}]


def test_audio_analysis_reads_a_videos_sound_and_refuses_a_soundless_video():
    data = _analyse(bars_video())
    assert (data["codec"], data["has_video"], data["silences"]) == ("aac", True, [])
    with pytest.raises(ProviderError) as raised:
        analysis.run({"audio_url": SILENT})
    assert raised.value.code == "invalid_media"


# --- local/image-filter ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(image_filter.FILTERS))
def test_image_filter_makes_a_png_of_the_same_size(name):
    output = _only(image_filter.run({"image_url": PNG, "filter": name}))
    picture = _picture(output)
    assert picture.format == "PNG" and picture.size == (200, 150) == (output.width, output.height)
    original = Image.open(io.BytesIO(png(200, 150)))
    assert difference(picture, original) > 0.1  # it changed the picture


def test_image_filter_does_what_it_says():
    gray = _picture(_only(image_filter.run({"image_url": PNG, "filter": "grayscale"}))).convert("RGB")
    red, green, blue = gray.split()
    assert ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(green, blue).getbbox() is None
    inverted = _picture(_only(image_filter.run({"image_url": PNG, "filter": "invert"})))
    assert inverted.getpixel((60, 50)) == (255 - 200, 255 - 30, 255 - 90)
    untouched = _picture(_only(image_filter.run({"image_url": PNG, "filter": "sepia", "intensity": 0})))
    assert difference(untouched, Image.open(io.BytesIO(png(200, 150)))) == 0


def test_image_filter_keeps_transparency():
    rgba = data_url("image/png", png(64, 64, mode="RGBA"))
    picture = _picture(_only(image_filter.run({"image_url": rgba, "filter": "blur"})))
    assert picture.mode == "RGBA" and picture.getpixel((24, 24))[3] == 128


def test_image_filter_refuses_a_video():
    with pytest.raises(ProviderError) as raised:
        image_filter.run({"image_url": BARS, "filter": "sepia"})
    assert raised.value.code == "invalid_media"


# --- local/text-to-video and local/image-to-video -------------------------------------------------------


def test_text_to_video_makes_a_browser_playable_mp4_of_the_asked_size_length_and_rate():
    output = _only(
        video.text_to_video({"prompt": "a whale", "width": 160, "height": 120, "duration": 1.5, "fps": 12, "seed": 3})
    )
    decoded = decode(output.content)
    assert (output.type, output.content_type) == ("video", "video/mp4")
    assert decoded.format.startswith("mov,mp4")
    assert (decoded.video_codec, decoded.pix_fmt, decoded.width, decoded.height) == ("h264", "yuv420p", 160, 120)
    assert (decoded.fps, decoded.frames) == (12, 18)
    assert decoded.duration == pytest.approx(1.5, abs=0.01)
    _assert_measured(output, decoded)


def test_text_to_video_is_animated_and_the_same_for_the_same_prompt_and_seed():
    first = video.text_to_video({"prompt": "kiwi", "width": 96, "height": 64, "duration": 1, "fps": 8, "seed": 9})
    again = video.text_to_video({"prompt": "kiwi", "width": 96, "height": 64, "duration": 1, "fps": 8, "seed": 9})
    other = video.text_to_video({"prompt": "kiwi", "width": 96, "height": 64, "duration": 1, "fps": 8, "seed": 10})
    pictures = frames(_only(first).content)
    assert difference(pictures[0], pictures[4]) > 1  # things move
    assert difference(pictures[0], frames(_only(again).content)[0]) < 0.5
    assert difference(pictures[0], frames(_only(other).content)[0]) > 5
    assert first.usage["seed"] == 9
    private = video.text_to_video({"prompt": "hunter", "width": 96, "height": 64, "duration": 1, "fps": 8, "seed": 9})
    assert difference(pictures[0], frames(_only(private).content)[0]) < 0.5  # the words themselves never show


def test_text_to_video_picks_and_records_a_seed_and_rounds_odd_sizes():
    result = video.text_to_video({"prompt": "x", "width": 101, "height": 65, "duration": 1, "fps": 8})
    assert isinstance(result.usage["seed"], int)
    assert (_only(result).width, _only(result).height) == (100, 64)


@pytest.mark.parametrize("motion", ["zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"])
def test_image_to_video_moves_over_the_image(motion):
    output = _only(video.image_to_video({"image_url": PNG, "motion": motion, "duration": 1, "fps": 10}))
    decoded = decode(output.content)
    assert (decoded.video_codec, decoded.pix_fmt, decoded.width, decoded.height) == ("h264", "yuv420p", 200, 150)
    assert (decoded.frames, decoded.duration) == (10, pytest.approx(1.0, abs=0.01))
    pictures = frames(output.content)
    assert difference(pictures[0], pictures[-1]) > 1
    _assert_measured(output, decoded)


def test_image_to_video_zooms_in_from_the_whole_picture():
    output = _only(video.image_to_video({"image_url": PNG, "width": 100, "height": 76, "duration": 1, "fps": 8}))
    pictures = frames(output.content)
    whole = Image.open(io.BytesIO(png(200, 150))).convert("RGB").resize((100, 76))
    assert pictures[0].size == (100, 76)
    assert difference(pictures[0], whole) < difference(pictures[-1], whole)


def test_image_to_video_keeps_the_image_shape_and_caps_its_size():
    big = data_url("image/png", png(2000, 1000))
    output = _only(video.image_to_video({"image_url": big, "duration": 1, "fps": 8}))
    assert (output.width, output.height) == (1280, 640)
    assert _only(video.image_to_video({"image_url": big, "height": 100, "duration": 1, "fps": 8})).width == 200


# --- local/text-to-speech and local/speech-to-text ------------------------------------------------------


def test_text_to_speech_speaks_an_mp3_by_default():
    output = _only(speech.text_to_speech({"text": "Hello from the local speech engine."}))
    decoded = decode(output.content)
    assert (output.type, output.content_type, output.file_name) == ("audio", "audio/mpeg", "speech.mp3")
    assert decoded.audio_codec == "mp3" and decoded.video_codec == ""
    assert 1.0 < decoded.duration < 5.0
    assert output.duration_seconds == pytest.approx(decoded.duration, abs=0.01)
    assert _analyse(output.content, "audio/mpeg")["integrated_loudness_lufs"] > -40  # there is sound in it


def test_text_to_speech_writes_wav_and_follows_speed_and_voice():
    slow = _only(speech.text_to_speech({"text": "one two three four five six", "format": "wav", "speed": 100}))
    fast = _only(speech.text_to_speech({"text": "one two three four five six", "format": "wav", "speed": 300}))
    decoded = decode(slow.content)
    assert (slow.content_type, decoded.audio_codec, decoded.sample_rate, decoded.channels) == (
        "audio/wav", "pcm_s16le", 22050, 1,
    )  # fmt: skip
    assert decode(fast.content).duration < decoded.duration * 0.6
    german = _only(speech.text_to_speech({"text": "one two three four five six", "format": "wav", "voice": "de"}))
    female = _only(speech.text_to_speech({"text": "one two three four five six", "format": "wav", "variant": "female"}))
    assert len({slow.content, german.content, female.content}) == 3


def test_text_to_speech_reads_markup_as_text():
    # No SSML and no phoneme codes: the tags are read as characters, nothing breaks and nothing is skipped.
    output = _only(speech.text_to_speech({"text": "<speak>[[h@l'oU]]</speak>\x00 end", "format": "wav"}))
    assert decode(output.content).duration > 0.5


def test_speech_to_text_transcribes_clear_english_speech():
    spoken = _only(speech.text_to_speech({"text": "one two three four five", "format": "wav", "speed": 140}))
    result = speech.speech_to_text({"audio_url": data_url("audio/wav", spoken.content)})
    output = _only(result)
    assert (output.type, output.content_type) == ("text", "text/plain")
    heard = output.text.split()
    assert len({"one", "two", "three", "four", "five"} & set(heard)) >= 3, output.text
    assert output.duration_seconds == pytest.approx(decode(spoken.content).duration, abs=0.05)
    assert result.usage["words"] == len(heard)


def test_speech_to_text_hears_nothing_in_silence_and_refuses_a_picture():
    assert _only(speech.speech_to_text({"audio_url": data_url("audio/wav", silence_wav())})).text == ""
    with pytest.raises(ProviderError) as raised:
        speech.speech_to_text({"audio_url": PNG})
    assert raised.value.code == "invalid_media"


# --- local/echo-chat and local/text-summary -------------------------------------------------------------


def test_echo_chat_describes_the_message_and_says_what_it_is():
    prompt = "Whales are the largest animals. Kiwis are small birds from New Zealand. Whales sing long songs."
    output = _only(text.echo_chat({"prompt": prompt, "system": "Be brief."}))
    assert (output.type, output.content_type) == ("text", "text/plain")
    assert "not an AI model" in output.text
    assert "16 words in 3 sentences" in output.text
    assert "largest" not in output.text and "Zealand" not in output.text
    assert "system prompt" in output.text
    assert output.text == _only(text.echo_chat({"prompt": prompt, "system": "Be brief."})).text


def test_echo_chat_does_not_pretend_to_answer():
    output = _only(text.echo_chat({"prompt": "What is the capital of France?"}))
    assert "France" not in output.text
    assert "pick a chat model" in output.text


def test_echo_chat_never_repeats_the_prompt_words():
    # A published reply must not reveal a private prompt: two prompts of the same shape get the same reply.
    first = _only(text.echo_chat({"prompt": "My secret password is hunter2."})).text
    second = _only(text.echo_chat({"prompt": "My secret passcode is tulip77."})).text
    assert first == second and "hunter2" not in first


def test_text_summary_keeps_the_most_central_sentences_in_order():
    body = (
        "Whales are large marine mammals. The weather was nice on Tuesday. Whales sing songs that travel far "
        "through the ocean. My neighbour owns a red bicycle. Blue whales are the largest whales that ever lived."
    )
    output = _only(text.text_summary({"text": body, "max_sentences": 2}))
    assert output.type == "text"
    assert (
        output.text == ("Whales are large marine mammals. Blue whales are the largest whales that ever lived.")
        or output.text.count("Whales") + output.text.count("whales") >= 3
    )
    for sentence in output.text.split(". "):
        assert sentence.rstrip(".") + "." in body or sentence in body
    assert "bicycle" not in output.text and "Tuesday" not in output.text
    assert _only(text.text_summary({"text": "Just one."})).text == "Just one."


# --- bad media URLs, for every engine that takes media --------------------------------------------------

MEDIA_ENGINES = [
    (tools.extract_frame, {"video_url": "{url}"}),
    (tools.merge_videos, {"video_urls": [BARS, "{url}"]}),
    (tools.merge_audio_video, {"video_url": BARS, "audio_url": "{url}"}),
    (tools.normalize_compose, {"video_url": "{url}"}),
    (analysis.run, {"audio_url": "{url}"}),
    (image_filter.run, {"image_url": "{url}"}),
    (video.image_to_video, {"image_url": "{url}"}),
    (speech.speech_to_text, {"audio_url": "{url}"}),
]


def _with(template, url):
    if isinstance(template, list):
        return [_with(item, url) for item in template]
    return url if template == "{url}" else template


@pytest.mark.parametrize(("engine", "template"), MEDIA_ENGINES, ids=lambda v: getattr(v, "__qualname__", ""))
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:9/media.mp4", "fetch_failed"),  # what the fetcher refuses or cannot reach
        ("http://169.254.169.254/latest/meta-data/", "fetch_failed"),
        ("file:///etc/passwd", "fetch_failed"),
        ("/media/outputs/../../secret", "invalid_media"),  # what is refused before any fetch, or is not media
        ("/media/outputs/2026/01/missing/file.mp4", "invalid_media"),
        ("data:video/mp4;base64,AAAA", "invalid_media"),
        ("data:text/plain,hello", "invalid_media"),
    ],
)
def test_a_bad_media_url_is_a_provider_error(engine, template, url, code):
    input = {name: _with(value, url) for name, value in template.items()}
    with pytest.raises(ProviderError) as raised:
        engine(input)
    assert raised.value.code == code
    assert not raised.value.retryable


def test_a_failing_ffmpeg_is_a_short_safe_provider_error(tmp_path):
    from apps.generations.providers.local.ffmpeg import ffmpeg

    with pytest.raises(ProviderError) as raised:
        ffmpeg(["-i", str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4")], cwd=tmp_path, what="do it")
    assert (raised.value.code, raised.value.message) == ("ffmpeg_failed", "ffmpeg could not do it.")
    assert str(tmp_path) not in raised.value.message


def test_a_slow_ffmpeg_is_stopped(tmp_path):
    from apps.generations.providers.local.ffmpeg import ffmpeg

    with pytest.raises(ProviderError) as raised:
        ffmpeg(["-re", "-f", "lavfi", "-i", "sine=d=30", "-f", "null", "-"], cwd=tmp_path, timeout=0.5)
    assert raised.value.code == "media_timeout"


# --- the catalog and the registry -----------------------------------------------------------------------

CATALOG = json.loads(CATALOG_FILE.read_text())["models"]
LOCAL_ENTRIES = [e for e in CATALOG if any(r["provider"] == "local" for r in e["routes"])]
PUBLISHED = {
    "ffmpeg/extract-frame": "0.4",
    "ffmpeg/merge-videos": "0.8",
    "ffmpeg-api/merge-audio-video": "0.2",
    "ffmpeg/normalize-compose": "0.8",
    "kiwiwhale/audio-analysis": "0.05",
}


def test_every_local_route_names_a_registered_engine_and_every_engine_is_served():
    routed = {r["upstream_model"] for e in LOCAL_ENTRIES for r in e["routes"] if r["provider"] == "local"}
    assert routed == set(ENGINES)


def test_local_engines_are_named_as_local_engines_not_ai_models():
    offline = [e for e in LOCAL_ENTRIES if e["public_model"].startswith("local/")]
    assert len(offline) == 8
    for entry in offline:
        assert entry["label"].endswith("(local engine)"), entry["public_model"]
        assert "not an AI model" in entry["description"], entry["public_model"]
        assert "no provider account" in entry["description"], entry["public_model"]


def test_local_schemas_are_closed():
    for entry in LOCAL_ENTRIES:
        assert entry["schema"]["additionalProperties"] is False, entry["public_model"]


def test_the_ffmpeg_tools_have_the_published_ids_and_costs():
    prices = {e["public_model"]: e["price"] for e in CATALOG}
    for model, credits in PUBLISHED.items():
        assert Decimal(prices[model]["credits"]) == Decimal(credits)
        assert "unit" not in prices[model]


@pytest.mark.django_db
def test_prices_follow_the_input(catalog):
    t2v = AIModel.objects.get(public_model="local/text-to-video")
    assert t2v.cost_micro(input_validate(model=t2v, data={"prompt": "x"})) == 60_000  # 3 s at 0.02
    assert t2v.cost_micro(input_validate(model=t2v, data={"prompt": "x", "duration": 7.5})) == 150_000
    i2v = AIModel.objects.get(public_model="local/image-to-video")
    assert i2v.cost_micro(input_validate(model=i2v, data={"image_url": "x", "duration": 10})) == 200_000
    tts = AIModel.objects.get(public_model="local/text-to-speech")
    assert tts.cost_micro(input_validate(model=tts, data={"text": "a" * 2500})) == 25_000
    assert tts.cost_micro(input_validate(model=tts, data={"text": "hi"})) == 1_000  # the minimum
    tool = AIModel.objects.get(public_model="ffmpeg/merge-videos")
    assert tool.base_cost_micro == 800_000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "data"),
    [
        ("local/text-to-video", {"prompt": "x", "duration": 11}),
        ("local/text-to-video", {"prompt": "x", "width": 2000}),
        ("local/text-to-video", {"prompt": "x", "width": 161}),
        ("local/text-to-video", {"prompt": "x", "music": True}),
        ("ffmpeg/merge-videos", {"video_urls": ["a"]}),
        ("ffmpeg/merge-videos", {"video_urls": ["a"] * 11}),
        ("ffmpeg/extract-frame", {"video_url": "a", "frame": "second"}),
        ("local/text-to-speech", {"text": "x" * 5001}),
        ("local/text-to-speech", {"text": "x", "voice": "klingon"}),
        ("kiwiwhale/audio-analysis", {"audio_url": "a", "silence_threshold_db": 0}),
        ("local/image-filter", {"image_url": "a", "filter": "deep-dream"}),
    ],
)
def test_schemas_refuse_out_of_bounds_input(catalog, model, data):
    from apps.catalog.services import InvalidInput

    with pytest.raises(InvalidInput):
        input_validate(model=AIModel.objects.get(public_model=model), data=data)


def test_the_local_provider_runs_engines_by_route_name():
    result = LocalProvider().run(upstream_model="text-summary", params={}, input={"text": "One. Two."})
    assert _only(result).text == "One. Two."
