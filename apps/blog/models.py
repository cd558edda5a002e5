from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class PostQuerySet(models.QuerySet):
    def published(self):
        """Posts anybody may read: not drafts, and their publication time has come."""
        return self.filter(is_draft=False, published_at__isnull=False, published_at__lte=timezone.now())

    def visible_to(self, user):
        """Staff also see drafts and scheduled posts, to preview them."""
        return self.all() if user.is_authenticated and user.is_staff else self.published()


class Post(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True, help_text="The post's address: /blog.php?slug=<slug>.")
    summary = models.CharField(max_length=300, blank=True, help_text="One or two sentences for the list and feed.")
    body = models.TextField(help_text="Markdown. Raw HTML is allowed but sanitised: no scripts, styles or handlers.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="blog_posts"
    )
    is_draft = models.BooleanField(default=True, help_text="Drafts are seen by staff only.")
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="Shown from this moment (a future time schedules the post)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PostQuerySet.as_manager()

    class Meta:
        ordering = ["-published_at", "-id"]
        indexes = [
            models.Index(fields=["-published_at", "-id"], name="post_recent", condition=models.Q(is_draft=False))
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self) -> str:
        return f"{reverse('blog')}?slug={self.slug}"

    @property
    def is_live(self) -> bool:
        return not self.is_draft and self.published_at is not None and self.published_at <= timezone.now()
