from django.urls import path

from apps.affiliates import views

urlpatterns = [
    path("affiliate.php", views.affiliate_page, name="affiliate"),
    path("affiliate/convert/", views.affiliate_convert, name="affiliate_convert"),
    path("affiliate/payout/", views.affiliate_payout, name="affiliate_payout"),
]
