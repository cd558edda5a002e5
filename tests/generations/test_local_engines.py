"""The local engines run on the instance itself: the procedural image engine and `kiwiwhale/upload`."""

import base64
import io
import mimetypes

import pytest
from PIL import Image

from apps.generations.providers import ProviderError
from apps.generations.providers.local import image, upload


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_url(content_type: str, content: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(content).decode()}"


def _draw(**input):
    return image.run({"prompt": "a whale in a kiwi orchard", "width": 320, "height": 200, **input})


def _pixels(output) -> Image.Image:
    return Image.open(io.BytesIO(output.content))


# --- procedural image -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(64, 64), (320, 200), (200, 640), (1024, 1024)])
def test_it_draws_a_png_of_the_asked_size(width, height):
    [output] = _draw(width=width, height=height, seed=1).outputs
    picture = _pixels(output)
    assert picture.format == "PNG"
    assert picture.size == (width, height)
    assert (output.type, output.content_type, output.width, output.height) == ("image", "image/png", width, height)
    assert output.file_name.endswith(".png")


def test_it_draws_the_same_bytes_for_the_same_prompt_and_seed():
    assert _draw(seed=42).outputs[0].content == _draw(seed=42).outputs[0].content


def test_it_draws_something_else_for_another_seed_or_a_prompt_of_another_length():
    first = _draw(seed=42).outputs[0].content
    assert _draw(seed=43).outputs[0].content != first
    assert _draw(seed=42, prompt="a kiwi in a whale orchard at dawn").outputs[0].content != first


def test_it_draws_num_images_different_pictures_seeded_one_after_another():
    result = _draw(seed=42, num_images=3)
    assert len(result.outputs) == 3
    assert len({output.content for output in result.outputs}) == 3
    # Image n uses seed + n, so any one of them can be drawn again on its own.
    assert result.outputs[2].content == _draw(seed=44).outputs[0].content
    assert result.usage == {"seed": 42, "images": 3}


def test_it_records_a_random_seed_that_draws_the_same_picture_again():
    result = _draw()
    seed = result.usage["seed"]
    assert isinstance(seed, int)
    assert 0 <= seed < 2**31
    assert _draw(seed=seed).outputs[0].content == result.outputs[0].content


def test_it_keeps_a_seed_of_zero():
    assert _draw(seed=0).usage["seed"] == 0


@pytest.mark.parametrize("angle", [0, 15, 30, 45, 60, 90, 137.5, 180, 225, 300, 359.9])
def test_it_fills_the_whole_background_whatever_the_angle(angle):
    # The gradient is the one piece that can leave empty corners; rotating the 256x256 gradient in place
    # left up to a sixth of it at 0, flat triangles of one colour. A smooth gradient has about 1/256 per value.
    gradient = image._gradient(angle)
    assert gradient.size == (256, 256)
    assert gradient.getextrema() == (0, 255)
    histogram = gradient.histogram()
    assert histogram[0] / (256 * 256) < 0.01
    assert histogram[255] / (256 * 256) < 0.01


@pytest.mark.parametrize("angle", [0, 0.001, 15, 45, 89.999, 90, 137.5, 180, 211.37, 270, 300, 359.9])
def test_its_gradient_is_the_rotated_square_cut_out_pixel_for_pixel(angle):
    # _gradient samples only the centre square; the pictures it draws are those of rotating the whole square
    # and cutting the centre out, so a seed draws the picture it drew before.
    from PIL import ImageOps

    rotated = image._gradient_square().rotate(angle, resample=Image.Resampling.BILINEAR)
    offset = (image._GRADIENT_SIDE - 256) // 2
    expected = ImageOps.autocontrast(rotated.crop((offset, offset, offset + 256, offset + 256)))
    assert image._gradient(angle).tobytes() == expected.tobytes()


def test_it_draws_nothing_of_the_prompt_words():
    # OCR-free privacy check: prompts that differ only in their (private) words give the very same picture,
    # so a published picture shows nothing of a private prompt and a guess cannot be confirmed by re-rendering.
    for seed in range(3):
        first = _draw(prompt="a whale named Hunter2 at 12 Elm Street", seed=seed, width=128, height=96).outputs[0]
        second = _draw(prompt="a kiwi called Zephyr by old Mill Road", seed=seed, width=128, height=96).outputs[0]
        assert first.content == second.content
    assert _draw(prompt="one two", seed=1).outputs[0].content != _draw(prompt="one two", seed=2).outputs[0].content


# --- upload ---------------------------------------------------------------------------------------------


def test_it_stores_an_image_with_its_size():
    png = _png(37, 21)
    [output] = upload.run({"file_url": _data_url("image/png", png)}).outputs
    assert (output.type, output.content_type, output.width, output.height) == ("image", "image/png", 37, 21)
    assert output.content == png
    assert output.file_name == "upload.png"


def test_it_counts_the_bytes_stored():
    png = _png(8, 8)
    assert upload.run({"file_url": _data_url("image/png", png)}).usage == {"bytes": len(png)}


def test_it_stores_text_with_its_text():
    [output] = upload.run({"file_url": "data:text/plain;charset=utf-8,h%C3%A9llo%2C%20world"}).outputs
    assert (output.type, output.content_type) == ("text", "text/plain")
    assert output.text == "héllo, world"
    assert output.content == "héllo, world".encode()
    assert output.file_name == "upload.txt"


def test_it_stores_json_with_its_data():
    [output] = upload.run({"file_url": _data_url("application/json", b'{"a": [1, 2]}')}).outputs
    assert (output.type, output.content_type, output.data) == ("json", "application/json", {"a": [1, 2]})


def test_it_refuses_json_that_does_not_parse():
    with pytest.raises(ProviderError, match="JSON"):
        upload.run({"file_url": _data_url("application/json", b"{nope")})


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "application/pdf", "application/zip", "application/x-sh"]
)
def test_it_refuses_types_it_does_not_store(content_type):
    with pytest.raises(ProviderError, match="cannot be uploaded") as caught:
        upload.run({"file_url": _data_url(content_type, b"%PDF-1.7 whatever")})
    assert caught.value.retryable is False


@pytest.mark.parametrize("content_type", ["text/html", "text/xml", "image/svg+xml", "application/xhtml+xml"])
def test_it_refuses_types_a_browser_would_run_scripts_in(content_type):
    # Local media is served from our own origin: storing these would be stored XSS.
    with pytest.raises(ProviderError, match="cannot be uploaded"):
        upload.run({"file_url": _data_url(content_type, b"<script>alert(1)</script>")})


def test_it_refuses_an_image_pillow_cannot_read():
    with pytest.raises(ProviderError, match="not one Pillow can read"):
        upload.run({"file_url": _data_url("image/png", b"not a png at all")})


def test_it_refuses_a_loopback_url(settings):
    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = False  # the default, stated so an .env cannot change it
    with pytest.raises(ProviderError, match="private, loopback or reserved") as caught:
        upload.run({"file_url": "http://127.0.0.1:8000/admin/"})
    assert caught.value.code == "fetch_failed"
    assert caught.value.retryable is False


def test_it_refuses_a_file_over_the_size_cap(settings):
    settings.FETCH_MAX_BYTES = 100
    with pytest.raises(ProviderError, match="larger than 100 bytes"):
        upload.run({"file_url": _data_url("text/plain", b"x" * 101)})


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "a/../../b.txt", "....", "%2e%2e%2fx", ""],
)
def test_it_keeps_a_file_name_inside_its_folder(name):
    [output] = upload.run({"file_url": "data:text/plain,hi", "file_name": name}).outputs
    stored = output.file_name
    assert "/" not in stored
    assert "\\" not in stored
    assert ".." not in stored
    assert not stored.startswith(".")
    assert stored.endswith(".txt")


def test_it_keeps_a_plain_file_name():
    [output] = upload.run({"file_url": _data_url("image/png", _png(2, 2)), "file_name": "my photo.png"}).outputs
    assert output.file_name == "my_photo.png"


def test_it_shortens_a_long_file_name():
    [output] = upload.run({"file_url": "data:text/plain,hi", "file_name": "n" * 500 + ".txt"}).outputs
    assert len(output.file_name) <= 110


@pytest.mark.parametrize(
    ("content_type", "name"),
    [("text/plain", "page.html"), ("image/png", "x.svg"), ("text/plain", "x.xhtml"), ("audio/x-kiwi", "x.html")],
)
def test_it_gives_the_file_name_an_extension_that_says_its_checked_type(content_type, name):
    # Local media is served with the type its extension implies: a text file named .html must not become HTML.
    content = _png(2, 2) if content_type == "image/png" else b"<script>alert(1)</script>"
    [output] = upload.run({"file_url": _data_url(content_type, content), "file_name": name}).outputs
    served_as = mimetypes.guess_type(output.file_name)[0]
    assert served_as in (content_type, None, "application/octet-stream")
