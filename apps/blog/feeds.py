from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Rss201rev2Feed

from apps.blog.markdown import post_html
from apps.blog.models import Post


class PostFeed(Feed):
    """/blog/feed.xml: the latest published posts, full text (sanitised like the pages)."""

    feed_type = Rss201rev2Feed

    def title(self):
        return f"{settings.SITE_NAME} blog"

    def link(self):
        return reverse("blog")

    def description(self):
        return f"News and guides from {settings.SITE_NAME}."

    def items(self):
        return Post.objects.published().select_related("author")[:20]

    def item_title(self, item):
        return item.title

    def item_description(self, item):
        return post_html(item)

    def item_link(self, item):
        return item.get_absolute_url()

    def item_pubdate(self, item):
        return item.published_at

    def item_updateddate(self, item):
        return item.updated_at

    def item_author_name(self, item):
        return (item.author.display_name or None) if item.author else None
