"""The blog's feed, under /blog/; the blog is /blog.php (kiwiwhale/legacy_urls.py)."""

from django.urls import path

from apps.blog import feeds

app_name = "blog"

urlpatterns = [
    path("feed.xml", feeds.PostFeed(), name="feed"),
]
