from urllib.parse import urlencode

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

# A publication anybody may see: published by its owner, not hidden by a moderator, its owner's account active and
# the generation still in the owner's history (deleting a job deletes its files).
PUBLIC = Q(is_published=True, is_hidden=False, owner__is_active=True, job__deleted_at__isnull=True)
GALLERY_ORDERING = ("-is_featured", "-published_at", "-id")  # featured first, then newest


class PublicationQuerySet(models.QuerySet):
    def public(self):
        return self.filter(PUBLIC)

    def visible_to(self, user):
        """What `user` may open: public ones, plus their own in any state; staff (moderators) see everything."""
        if user.is_authenticated and user.is_staff:
            return self.all()
        if user.is_authenticated:
            return self.filter(PUBLIC | Q(owner=user, job__deleted_at__isnull=True))
        return self.public()

    def owned_by(self, user):
        return self.filter(owner=user, job__deleted_at__isnull=True)

    def with_cards(self):
        return self.select_related("cover", "model", "owner")


class Publication(models.Model):
    """A generation its owner chose to show in the showroom (one per job; unpublishing keeps the row)."""

    job = models.OneToOneField("generations.Job", on_delete=models.CASCADE, related_name="publication")
    cover = models.ForeignKey(
        "generations.Output",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The output shown on the gallery card.",
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="publications")
    # Copied from the job so the gallery filters on this table alone.
    model = models.ForeignKey("catalog.AIModel", on_delete=models.PROTECT, related_name="publications")
    category = models.CharField(max_length=20)
    title = models.CharField(max_length=120)
    show_prompt = models.BooleanField(
        default=False, help_text="Whether visitors see the prompt and other free text of the input."
    )
    is_published = models.BooleanField(default=True, help_text="Off when its owner unpublished it.")
    is_hidden = models.BooleanField(
        default=False, help_text="Hidden by a moderator: only its owner and staff can see it, and republishing won't."
    )
    is_featured = models.BooleanField(default=False, help_text="Featured publications come first in the gallery.")
    moderation_note = models.TextField(blank=True, help_text="Staff only.")
    like_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(default=timezone.now, help_text="When it was (last) published.")

    objects = PublicationQuerySet.as_manager()

    class Meta:
        ordering = list(GALLERY_ORDERING)
        indexes = [
            models.Index(
                fields=["-is_featured", "-published_at", "-id"],
                name="pub_gallery",
                condition=Q(is_published=True, is_hidden=False),
            ),
            models.Index(
                fields=["category", "-is_featured", "-published_at", "-id"],
                name="pub_gallery_category",
                condition=Q(is_published=True, is_hidden=False),
            ),
            models.Index(
                fields=["model", "-is_featured", "-published_at", "-id"],
                name="pub_gallery_model",
                condition=Q(is_published=True, is_hidden=False),
            ),
            models.Index(fields=["owner", "-published_at", "-id"], name="pub_owner_recent"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return f"{reverse('showroom')}?id={self.pk}"

    @property
    def is_public(self) -> bool:
        return self.is_published and not self.is_hidden

    @property
    def remix_path(self) -> str:
        """The playground, prefilled from this publication (the playground reads `remix`)."""
        return "/model-playground.php?" + urlencode({"model": self.model.public_model, "remix": self.pk})


class Like(models.Model):
    publication = models.ForeignKey(Publication, on_delete=models.CASCADE, related_name="likes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="showroom_likes")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "publication"], name="like_once_per_user")]

    def __str__(self):
        return f"{self.user} ♥ {self.publication_id}"


class Report(models.Model):
    class Reason(models.TextChoices):
        SPAM = "spam", "Spam or advertising"
        SEXUAL = "sexual", "Sexual content"
        VIOLENCE = "violence", "Violence or gore"
        HATE = "hate", "Hate or harassment"
        ILLEGAL = "illegal", "Illegal content"
        COPYRIGHT = "copyright", "Copyright or impersonation"
        PRIVACY = "privacy", "Private information"
        OTHER = "other", "Something else"

    publication = models.ForeignKey(Publication, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="showroom_reports"
    )
    reporter_ip = models.GenericIPAddressField(null=True, blank=True, help_text="For abuse of the report button.")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    details = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["publication", "resolved_at"], name="report_publication_open")]

    def __str__(self):
        return f"Report #{self.pk} on #{self.publication_id}: {self.get_reason_display()}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
