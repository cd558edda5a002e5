"""Whatever is sent to /v1, the answer is OpenAI's error shape with a 4xx status, never a 500, and no job.

These are refused before any job is submitted; what reaches generate.php (and its schema check) is tested against
the live server in test_openai_sdk.py.
"""

import json

import pytest

from apps.generations.models import Job
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

JSON_BODIES = [
    b"not json",
    b"[1, 2]",
    b'"text"',
    b"{}",
    b'{"model": 5}',
    b'{"model": "local/echo-chat", "messages": "hi"}',
    b'{"model": "local/echo-chat", "messages": []}',
    b'{"model": "local/echo-chat", "messages": [1]}',
    b'{"model": "local/echo-chat", "messages": [{"role": "user"}]}',
    b'{"model": "local/echo-chat", "messages": [{"role": "user", "content": "x", "tool_calls": []}]}',
    b'{"model": "local/echo-chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
    b'{"model": "local/echo-chat", "messages": [{"role": "user", "content": "x"}], "stream_options": {}}',
    b'{"model": "local/echo-chat", "messages": [{"role": "user", "content": "x"}], "n": 3}',
    b'{"model": "local/procedural-image", "prompt": "x", "size": "0x-1"}',
    b'{"model": "local/procedural-image", "prompt": "x", "response_format": "png"}',
    b'{"model": "local/text-to-speech", "input": "x", "voice": ["alloy"]}',
    b'{"model": "local/text-to-speech", "input": "x", "speed": "fast"}',
    b'{"model": "local/text-to-speech", "input": "x", "speed": true}',
    b'{"model": "local/speech-to-text"}',
    b'{"model": "local/echo-chat\\u0000"}',
]
JSON_PATHS = ["/v1/chat/completions", "/v1/images/generations", "/v1/audio/speech"]
FORM_PATHS = ["/v1/images/edits", "/v1/audio/transcriptions"]


def _assert_openai_error(response):
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code", "param"}


def test_no_body_makes_a_500_or_a_job(catalog, alice):
    api = client_for(alice)
    for path in JSON_PATHS:
        for body in JSON_BODIES:
            _assert_openai_error(api.generic("POST", path, body, content_type="application/json"))
    for path in FORM_PATHS:
        _assert_openai_error(api.post(path, {"model": "local/image-filter", "prompt": "sepia", "n": "2"}))
        _assert_openai_error(api.post(path, {"model": "local/speech-to-text", "n": "many"}))
        _assert_openai_error(api.generic("POST", path, json.dumps({"model": "x"}), content_type="application/json"))
    assert not Job.objects.exists()


def test_it_answers_405_401_and_404_in_openai_shape(catalog, alice):
    anonymous = client_for(alice)
    anonymous.credentials()
    _assert_openai_error(anonymous.get("/v1/chat/completions"))
    response = anonymous.post("/v1/chat/completions", {"model": "local/echo-chat"}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")
    _assert_openai_error(anonymous.post("/v1/embeddings", {}, format="json"))
    assert anonymous.get("/v1/models/no/such/model").status_code == 404
    assert anonymous.get("/v1/models").json()["object"] == "list"
