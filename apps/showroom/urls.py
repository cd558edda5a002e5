from django.urls import path

from apps.showroom import views

app_name = "showroom"

urlpatterns = [
    # The gallery at the published path; one publication is /showroom.php?id=<id>.
    path("showroom.php", views.showroom, name="gallery"),
    # Form actions (POST, CSRF-protected).
    path("showroom/publish/", views.publication_publish, name="publish"),
    path("showroom/<int:pk>/unpublish/", views.publication_unpublish, name="unpublish"),
    path("showroom/<int:pk>/like/", views.publication_like, name="like"),
    path("showroom/<int:pk>/report/", views.publication_report, name="report"),
]
