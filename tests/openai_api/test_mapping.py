"""The catalog's OpenAI maps, applied to the seeded models: what reaches the input, and what is refused."""

import pytest

from apps.catalog.models import AIModel
from apps.openai_api.mapping import UnsupportedParameter, UploadedFile, openai_input

pytestmark = pytest.mark.django_db


def _model(public_model: str) -> AIModel:
    return AIModel.objects.get(public_model=public_model)


def test_it_gives_a_conversation_to_a_one_prompt_model_as_a_transcript(catalog):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again?"},
    ]
    assert openai_input(model=_model("local/echo-chat"), fields={"messages": messages}) == {
        "prompt": "User: Hi\n\nAssistant: Hello.\n\nUser: Again?",
        "system": "Be brief.",
    }


def test_it_refuses_what_a_model_cannot_honour(catalog):
    cases = [
        ("local/echo-chat", {"messages": [{"role": "user", "content": "x"}], "temperature": 0.1}, "temperature"),
        ("local/echo-chat", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages.0.content"),
        ("local/echo-chat", {"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        (
            "local/text-summary",
            {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]},
            "messages",
        ),
        ("local/procedural-image", {"prompt": "x", "quality": "hd"}, "quality"),
        ("local/procedural-image", {"prompt": "x", "size": "big"}, "size"),
        ("z-image", {"prompt": "x", "size": "333x333"}, "size"),
        ("local/text-to-speech", {"input": "x", "voice": "klingon"}, "voice"),
        ("kiwiwhale/s2-pro/tts", {"input": "x", "response_format": "wav"}, "response_format"),
        ("local/image-filter", {"image": "not a file", "prompt": "sepia"}, "image"),
    ]
    for public_model, fields, param in cases:
        with pytest.raises(UnsupportedParameter) as caught:
            openai_input(model=_model(public_model), fields=fields)
        assert caught.value.param == param, (public_model, fields)


def test_it_maps_sizes_voices_speed_and_files(catalog):
    assert openai_input(model=_model("local/procedural-image"), fields={"prompt": "x", "n": 2, "size": "96x64"}) == {
        "prompt": "x",
        "num_images": 2,
        "width": 96,
        "height": 64,
    }
    assert openai_input(model=_model("z-image"), fields={"prompt": "x", "size": "1024x576"})["image_size"] == (
        "landscape_16_9"
    )
    speech = openai_input(
        model=_model("local/text-to-speech"), fields={"input": "hi", "voice": "en-gb", "speed": 1.2, "user": None}
    )
    assert speech == {"text": "hi", "voice": "en-gb", "speed": 210}
    upload = UploadedFile(content=b"\x89PNG", content_type="image/png")
    edit = openai_input(model=_model("local/image-filter"), fields={"image": upload, "prompt": "blur", "n": 1})
    assert edit == {"image_url": "data:image/png;base64,iVBORw==", "filter": "blur"}
