from django.urls import path

from apps.blog import feeds, views

app_name = "blog"

urlpatterns = [
    # The list at the published path; one post is /blog.php?slug=<slug>.
    path("blog.php", views.blog, name="list"),
    path("blog/feed.xml", feeds.PostFeed(), name="feed"),
]
