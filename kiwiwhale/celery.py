import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")

app = Celery("kiwiwhale")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Every minute: jobs committed but never enqueued (crash between commit and enqueue) are enqueued again.
    "jobs-requeue-lost": {"task": "apps.generations.tasks.jobs_requeue_lost", "schedule": 60.0},
    # Every minute: jobs processing past JOB_TIMEOUT_SECONDS fail and their hold is released.
    "jobs-fail-stuck": {"task": "apps.generations.tasks.jobs_fail_stuck", "schedule": 60.0},
    # Every hour: affiliate commissions past their hold period become available.
    "commissions-mature": {"task": "apps.affiliates.tasks.commissions_mature", "schedule": 3600.0},
    # Every hour: commission handovers from billing whose task was lost (broker down) are caught up.
    "commission-catch-up": {"task": "apps.affiliates.tasks.commission_handovers_catch_up", "schedule": 3600.0},
    # Every 5 minutes: payments still in flight after 10 minutes are checked with Stripe (lost webhooks).
    "payments-reconcile": {"task": "apps.billing.tasks.payments_reconcile", "schedule": 300.0},
    # Every hour: Idempotency-Key records older than 24 hours are deleted.
    "idempotency-purge": {"task": "apps.api.tasks.idempotency_purge", "schedule": 3600.0},
}
