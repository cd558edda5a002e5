from django.urls import path

from apps.contact import views

app_name = "contact"

urlpatterns = [
    path("contact.php", views.contact_create, name="form"),
    path("terms.php", views.terms_show, name="terms"),
]
