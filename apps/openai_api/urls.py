"""The OpenAI-compatible API, mounted at /v1 (docs/openai.md)."""

from django.urls import path, re_path

from apps.openai_api import views

app_name = "openai_api"

urlpatterns = [
    path("models", views.models_list, name="models"),
    path("models/<path:model_id>", views.model_detail, name="model"),  # ids such as gpt-image-2/text-to-image
    path("chat/completions", views.chat_completions, name="chat_completions"),
    path("images/generations", views.images_generations, name="images_generations"),
    path("images/edits", views.images_edits, name="images_edits"),
    path("audio/speech", views.audio_speech, name="audio_speech"),
    path("audio/transcriptions", views.audio_transcriptions, name="audio_transcriptions"),
    re_path(r"^(?P<rest>.*)$", views.not_found),
]
