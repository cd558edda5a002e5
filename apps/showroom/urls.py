"""The showroom's form actions, under /showroom/ (POST, CSRF-protected); the gallery is /showroom.php
(kiwiwhale/legacy_urls.py)."""

from django.urls import path

from apps.showroom import views

app_name = "showroom"

urlpatterns = [
    path("publish/", views.publication_publish, name="publish"),
    path("<int:pk>/unpublish/", views.publication_unpublish, name="unpublish"),
    path("<int:pk>/like/", views.publication_like, name="like"),
    path("<int:pk>/report/", views.publication_report, name="report"),
]
