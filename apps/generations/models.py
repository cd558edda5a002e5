import secrets
from collections.abc import Iterable

from django.conf import settings
from django.db import models
from django.utils import timezone


def job_id_new() -> str:
    return "job_" + secrets.token_urlsafe(18)


def output_upload_to(instance, filename: str) -> str:
    # A fresh random folder per file: the URL cannot be derived from the job id or guessed.
    return f"outputs/{timezone.now():%Y/%m}/{secrets.token_urlsafe(16)}/{filename}"


# What a job's webhook can be told (`webhook_events` on generate.php); without a choice, how it ended.
WEBHOOK_EVENTS = ("started", "completed", "failed", "canceled")
WEBHOOK_EVENTS_DEFAULT = ("completed", "failed", "canceled")


class JobQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def with_outputs(self):
        return self.select_related("model").prefetch_related("outputs")

    def answer_fields(self):
        """Only the columns a job's API answer shows (its model joined): the poll's one query. The model's schema,
        the job's input and its run state are large JSON that the answer never reads."""
        return self.select_related("model").only(*Job.ANSWER_FIELDS, "model__public_model", "model__category")

    def visible(self):
        """Jobs their owner has not deleted from their history (the rows stay: they record money)."""
        return self.filter(deleted_at__isnull=True)

    def transition(self, *, source: str | Iterable[str], target: str, **changes) -> int:
        """Moves the jobs of this queryset that are in `source` to `target` in one conditional UPDATE, setting
        `changes` too; returns how many moved. Every change of a job's status goes through here, so a move the
        table `Job.TRANSITIONS` does not allow is refused before it reaches the database."""
        sources = [source] if isinstance(source, str) else list(source)
        for state in sources:
            if not Job.transition_allowed(state, target):
                raise IllegalTransition(f"A job cannot go from {state} to {target}.")
        return self.filter(status__in=sources).update(status=target, **changes)


class IllegalTransition(ValueError):
    pass


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELED)
    # What the API's answer (apps/generations/apis.py JobSerializer) reads of a job.
    ANSWER_FIELDS = (
        "id", "user_id", "model_id", "status", "cost_micro", "created_at", "started_at", "completed_at",
        "error_code", "error_message", "deadline_at", "deleted_at",
    )  # fmt: skip
    # The one table of the moves a job may make (docs/operations.md#job-states). processing → queued is the retry
    # of a job whose worker was lost (its lease lapsed); the terminal states are final.
    TRANSITIONS = {
        Status.QUEUED: {Status.PROCESSING, Status.FAILED, Status.CANCELED},
        Status.PROCESSING: {Status.COMPLETED, Status.FAILED, Status.CANCELED, Status.QUEUED},
        Status.COMPLETED: set(),
        Status.FAILED: set(),
        Status.CANCELED: set(),
    }

    id = models.CharField(primary_key=True, max_length=40, default=job_id_new, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    model = models.ForeignKey("catalog.AIModel", on_delete=models.PROTECT, related_name="jobs")
    input = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    cost_micro = models.BigIntegerField(help_text="The quote, held at submission.")
    hold = models.OneToOneField("billing.Hold", null=True, blank=True, on_delete=models.PROTECT, related_name="job")
    webhook_url = models.URLField(max_length=2000, blank=True)
    webhook_events = models.JSONField(default=list, blank=True, help_text="Empty: completed, failed, canceled.")
    provider = models.CharField(max_length=40, blank=True, help_text="The route that served (or last tried) it.")
    route = models.ForeignKey(
        "catalog.ModelRoute",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The route running it now (long upstream jobs are polled through it).",
    )
    upstream_id = models.CharField(max_length=200, blank=True, help_text="The provider's id of the request.")
    upstream_state = models.JSONField(default=dict, blank=True, help_text="What the adapter needs to poll it.")
    poll_at = models.DateTimeField(null=True, blank=True, help_text="When a long upstream job is checked next.")
    usage = models.JSONField(default=dict, blank=True, help_text="What the run actually used (for usage pricing).")
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Runs started (a lost worker's run counts).")
    lease_owner = models.CharField(
        max_length=100, blank=True, help_text="The worker run holding the job (host:pid:token) while it runs."
    )
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Renewed by the running worker; once past, the sweeper recovers the job."
    )
    staged_files = models.JSONField(
        default=list, blank=True, help_text="Files written by the current run and not yet committed as outputs."
    )
    requeues = models.PositiveSmallIntegerField(default=0, help_text="Messages re-sent by the lost-message sweeper.")
    created_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When its last message reached the broker.")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Hidden by its owner.")
    deadline_at = models.DateTimeField(
        null=True, blank=True, help_text="Cancel-After: canceled, its hold returned, if not finished by then."
    )
    stream_text = models.BooleanField(
        default=False, help_text="Its text is published as it arrives (a streamed /v1 chat completion)."
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="job_user_recent"),
            models.Index(fields=["status", "created_at"], name="job_status_age"),
            models.Index(fields=["status", "poll_at"], name="job_status_poll"),
            models.Index(fields=["status", "lease_expires_at"], name="job_status_lease"),
            models.Index(fields=["deadline_at"], condition=models.Q(deadline_at__isnull=False), name="job_deadline"),
        ]

    def __str__(self):
        return self.id

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @classmethod
    def transition_allowed(cls, source: str, target: str) -> bool:
        return target in cls.TRANSITIONS.get(source, set())

    def webhook_wants(self, event: str) -> bool:
        return bool(self.webhook_url) and event in (self.webhook_events or WEBHOOK_EVENTS_DEFAULT)

    @property
    def public_model(self) -> str:
        return self.model.public_model

    @property
    def category(self) -> str:
        return self.model.category


class Output(models.Model):
    class Type(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"
        AUDIO = "audio", "Audio"
        TEXT = "text", "Text"
        JSON = "json", "JSON"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="outputs")
    position = models.PositiveSmallIntegerField(default=0)
    type = models.CharField(max_length=8, choices=Type.choices)
    file = models.FileField(upload_to=output_upload_to, max_length=300, blank=True)
    content_type = models.CharField(max_length=100)
    file_name = models.CharField(max_length=200)
    file_size = models.BigIntegerField(default=0)
    text = models.TextField(blank=True)
    data = models.JSONField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self):
        return f"{self.job_id}[{self.position}] {self.file_name}"
