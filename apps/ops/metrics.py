"""Prometheus metrics at /metrics.

Two kinds:
- Measured in the process: HTTP request latency by route (the URL pattern's name, never the raw path, so job
  ids don't explode the label set). With several web processes, set PROMETHEUS_MULTIPROC_DIR (scripts/web does)
  and every process's samples are summed at scrape time.
- Read from the database at scrape time (the truth, whichever process did the work): jobs by state and model,
  the queue depth, job durations over the last hour, webhook deliveries by outcome, ledger totals by kind.
"""

import os
import time
from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from kiwiwhale.lib.middleware import InlineMiddlewareMixin

REQUEST_LATENCY = Histogram(
    "kiwiwhale_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class MetricsMiddleware(InlineMiddlewareMixin):
    def process_request(self, request):
        request._metrics_started = time.perf_counter()

    def process_response(self, request, response):
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or match.route) if match else "unmatched"
        REQUEST_LATENCY.labels(route, request.method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - request._metrics_started
        )
        return response


class DatabaseCollector:
    """Gauges computed from the database when Prometheus scrapes."""

    def collect(self):
        from apps.billing.models import LedgerEntry
        from apps.generations.models import Job

        jobs = GaugeMetricFamily("kiwiwhale_jobs", "Jobs by state and model.", labels=["status", "model"])
        for row in Job.objects.values("status", "model__public_model").annotate(n=Count("id")):
            jobs.add_metric([row["status"], row["model__public_model"] or ""], row["n"])
        yield jobs

        queued = Job.objects.filter(status=Job.Status.QUEUED)
        depth = GaugeMetricFamily("kiwiwhale_queue_depth", "Jobs waiting for a worker.")
        depth.add_metric([], queued.count())
        yield depth
        oldest = queued.order_by("created_at").values_list("created_at", flat=True).first()
        age = GaugeMetricFamily("kiwiwhale_queue_oldest_seconds", "Age of the oldest queued job (0 when none).")
        age.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0.0)
        yield age

        yield self._durations(Job)

        ledger = GaugeMetricFamily(
            "kiwiwhale_ledger_micro_credits", "Sum of ledger entries by kind, in micro-credits.", labels=["kind"]
        )
        for row in LedgerEntry.objects.values("kind").annotate(total=Sum("amount_micro")):
            ledger.add_metric([row["kind"]], row["total"] or 0)
        yield ledger

        deliveries = self._webhook_deliveries()
        if deliveries is not None:
            yield deliveries

    def _durations(self, Job):
        since = timezone.now() - timedelta(hours=1)
        rows = Job.objects.filter(
            completed_at__gte=since, started_at__isnull=False, status=Job.Status.COMPLETED
        ).values_list("started_at", "completed_at")
        seconds = [(done - started).total_seconds() for started, done in rows]
        counts = [sum(1 for s in seconds if s <= bound) for bound in DURATION_BUCKETS]
        buckets = [(str(b), c) for b, c in zip(DURATION_BUCKETS, counts, strict=True)] + [("+Inf", len(seconds))]
        family = HistogramMetricFamily(
            "kiwiwhale_job_duration_seconds", "Run time of the jobs completed in the last hour (started to completed)."
        )
        family.add_metric([], buckets, sum_value=sum(seconds))
        return family

    def _webhook_deliveries(self):
        from django.apps import apps

        if not apps.is_installed("apps.webhooks"):
            return None
        Delivery = apps.get_model("webhooks", "WebhookDelivery")
        family = GaugeMetricFamily(
            "kiwiwhale_webhook_deliveries", "Job webhook deliveries by state.", labels=["status"]
        )
        for row in Delivery.objects.values("status").annotate(n=Count("id")):
            family.add_metric([row["status"]], row["n"])
        return family


def metrics_text() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_LATENCY)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
