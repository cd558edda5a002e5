"""KiwiWhale settings: every environment read lives here (django-environ).

Embedded defaults (no variable set) run the whole platform on one machine: SQLite, local media files,
a Celery broker on the filesystem. Production sets DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and
storage; see `.env.example`.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # git-ignored runtime state of the embedded default

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

# The key: SECRET_KEY, else the one `make run` generated once into var/secret_key (kept across restarts, so
# sessions and signed links survive them), else a development key when DEBUG is on.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY and SECRET_KEY_FILE.exists():
    SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (or run `make run` once, which keeps one in var/secret_key)."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105
# `make run` serves plain http on the loopback: no https redirect, no secure-only cookies, no HSTS there.
SERVE_PLAIN_HTTP = env.bool("SERVE_PLAIN_HTTP", default=DEBUG)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute base URL used where there is no request (emails, worker-built links). Empty: from the request.
SITE_URL = env.str("SITE_URL", default="").rstrip("/")
SITE_NAME = env.str("SITE_NAME", default="KiwiWhale")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files: the API reference needs no CDN
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.google",
    "apps.accounts",
    "apps.billing",
    "apps.catalog",
    "apps.generations",
    "apps.api",
    "apps.showroom",
    "apps.affiliates",
    "apps.site",
    "apps.blog",
    "apps.contact",
    "apps.ops",
    "apps.webhooks",
]

MIDDLEWARE = [
    "apps.ops.request_id.RequestIdMiddleware",
    "apps.ops.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "kiwiwhale.lib.csp.ContentSecurityPolicyMiddleware",  # scripts: ours, Stripe.js, inline ones with the nonce
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.api.middleware.InputGuardMiddleware",  # NUL and lone surrogates in paths, queries, forms → 400
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "apps.affiliates.middleware.ReferralMiddleware",
]
# A bearer request to /api/ is served by its own handler with these (kiwiwhale/asgi.py): it has no session, cookie,
# form or page, and each of these runs inline on the event loop, so the request reaches its view without the site's
# work or a thread hop between middlewares. The order is MIDDLEWARE's. (The site's chain is sync from its session
# middleware on, so it keeps Django's own SecurityMiddleware, the one `check --deploy` looks for.)
API_MIDDLEWARE = [
    "apps.ops.request_id.RequestIdMiddleware",
    "apps.ops.metrics.MetricsMiddleware",
    "kiwiwhale.lib.middleware.SecurityMiddleware",  # Django's, its hooks run inline
    "apps.api.middleware.InputGuardMiddleware",
]

ROOT_URLCONF = "kiwiwhale.urls"
WSGI_APPLICATION = "kiwiwhale.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.site.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a kept connection is checked before its reuse
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool("DB_POOL", default=False):
    # The ASGI web server (scripts/web turns this on) runs each request in a thread of its own, so a persistent
    # connection per thread would pile up; a psycopg pool per process hands connections back after each request.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share one SQLite file: wait for locks instead of failing at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # WAL: readers never wait for the writer, so polls and pages stay fast while a worker settles a job.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "kiwiwhale.lib.redis_pool.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"pool_class": "kiwiwhale.lib.redis_pool.SharedConnectionPool"},  # one per process
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "kiwiwhale.lib.broker:Transport"  # kombu's, with one Redis client per channel
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded default: messages are files, so queued jobs survive a restart of either process.
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    _control_dir = VAR_DIR / "celery" / "control"
    for _dir in (_queue_dir, _processed_dir, _control_dir):
        _dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "store_processed": False,
        "control_folder": str(_control_dir),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A message is acknowledged after its task ran, so one prefetched by a worker that dies is delivered again; a job
# that was already running is not rerun by that (the claim refuses it): its lapsed lease is what recovers it.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection around every task unless told to reuse them: it then
# closes them every 1,000 tasks, and kiwiwhale/celery.py closes a failed or expired one around each task instead.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="kiwiwhale")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the worker logs through LOGGING below, request ids included
# The job sweepers have a queue of their own, so a backlog of jobs never delays the recovery of lost ones. Every
# worker consumes both queues unless started with -Q (docs/operations.md#job-leases).
CELERY_SWEEP_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-sweep"
# Each queue on an exchange of its own name, as Celery makes a queue it was not told of: a message goes to one queue.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, CELERY_SWEEP_QUEUE)
]
CELERY_TASK_ROUTES = {
    f"apps.generations.tasks.{name}": {"queue": CELERY_SWEEP_QUEUE}
    for name in ("jobs_recover_lapsed", "jobs_requeue_lost", "jobs_fail_stuck")
}

# --- Auth -------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_ADAPTER = "apps.accounts.adapter.AccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
ACCOUNT_EMAIL_NOTIFICATIONS = True  # tell the owner when their password, email or 2FA changes
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
# Two-factor: an authenticator app (TOTP) with recovery codes, under /accounts/2fa/.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME
# Social login: a provider is offered only when its OAuth app is set here (or added in the admin's Social apps).
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapter.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {}
for _provider, _scope in (("github", ["user:email"]), ("google", ["profile", "email"])):
    _client_id = env.str(f"{_provider.upper()}_CLIENT_ID", default="")
    _secret = env.str(f"{_provider.upper()}_CLIENT_SECRET", default="")
    if _client_id and _secret:
        SOCIALACCOUNT_PROVIDERS[_provider] = {"APP": {"client_id": _client_id, "secret": _secret}, "SCOPE": _scope}
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never sign into an existing account just because an email matches

# --- Email ------------------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="KiwiWhale <noreply@localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# Who receives contact-form messages (and Django's error mails): comma-separated addresses.
ADMINS = [("Admin", address) for address in env.list("ADMIN_EMAILS", default=[])]

# --- Static and media -------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Local media is served by the app itself (unguessable paths, no auth; HTTP ranges and long caching, see
# kiwiwhale/lib/media_serve.py); with S3 the bucket serves it.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "querystring_auth": False,
            "file_overwrite": False,
        },
    }
SERVE_MEDIA = not AWS_STORAGE_BUCKET_NAME

# --- Security (production defaults follow DEBUG; each can be set) ----------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not SERVE_PLAIN_HTTP)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not SERVE_PLAIN_HTTP)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not SERVE_PLAIN_HTTP)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if SERVE_PLAIN_HTTP else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not SERVE_PLAIN_HTTP)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not SERVE_PLAIN_HTTP)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Every line carries the request id (web) or the id of the request that enqueued the task (worker); LOG_FORMAT=json
# writes one JSON object per line for a log collector.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apps.ops.request_id.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "json": {"()": "apps.ops.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
# Who may read /metrics besides staff sessions: `Authorization: Bearer <METRICS_TOKEN>` (empty: staff only).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- API --------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.api.permissions.KeyScopePermission",  # after authentication, which admits the key
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.JSONParser"],  # + NUL, surrogates and depth checked
    "EXCEPTION_HANDLER": "apps.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "KiwiWhale API",
    "DESCRIPTION": "Generate images, video, audio and text with AI models; pay with credits.",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "PREPROCESSING_HOOKS": ["apps.api.schema.published_paths_only"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "apps.api.schema.contract_postprocess"],
    # Several models have a `status`: name each set of choices after its model.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "apps.generations.models.Job.Status",
        "PaymentStatusEnum": "apps.billing.models.Payment.Status",
    },
    "SERVERS": [{"url": SITE_URL}] if SITE_URL else [],
    "WEBHOOKS": ["apps.webhooks.apis.job_event_webhook"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Platform rules ---------------------------------------------------------------------------------------
RATE_AGENT_REGISTER = env.str("RATE_AGENT_REGISTER", default="10/hour")  # per client IP
# Per account: generate.php requests, jobs that cost nothing (uploads), and the output bytes past which no more
# free jobs are accepted (1 GiB).
RATE_GENERATE_ACCOUNT = env.str("RATE_GENERATE_ACCOUNT", default="120/minute")
RATE_FREE_JOBS_ACCOUNT = env.str("RATE_FREE_JOBS_ACCOUNT", default="30/hour")
QUOTA_STORED_BYTES_ACCOUNT = env.int("QUOTA_STORED_BYTES_ACCOUNT", default=1024**3)
# Proxies in front of the app that append to X-Forwarded-For (0: use REMOTE_ADDR only).
REST_FRAMEWORK["NUM_PROXIES"] = env.int("NUM_PROXIES", default=0)
SIGNUP_FREE_CREDITS = env.str("SIGNUP_FREE_CREDITS", default="0")  # credits, decimal string
# Local engines too inaccurate to offer by default (PocketSphinx mishears even our own TTS): kept out of the
# catalog's listings unless the operator asks for them.
SHOW_LOW_ACCURACY_ENGINES = env.bool("SHOW_LOW_ACCURACY_ENGINES", default=False)
CATALOG_HIDDEN_MODELS = [] if SHOW_LOW_ACCURACY_ENGINES else ["local/speech-to-text"]
# Where contact-form messages are emailed (empty: the ADMINS and the active staff's addresses).
CONTACT_EMAIL = env.str("CONTACT_EMAIL", default="")
# Quote-to-poll lifecycle of jobs.
JOB_REQUEUE_AFTER_SECONDS = env.int("JOB_REQUEUE_AFTER_SECONDS", default=120)
JOB_TIMEOUT_SECONDS = env.int("JOB_TIMEOUT_SECONDS", default=1800)
# A running job's lease: its worker renews it every third of this; once it lapses (the worker was killed, its machine
# lost) the lease sweeper, every JOB_SWEEP_SECONDS, retries the job or fails it with its credits back.
JOB_LEASE_SECONDS = env.float("JOB_LEASE_SECONDS", default=60.0)
JOB_SWEEP_SECONDS = env.float("JOB_SWEEP_SECONDS", default=30.0)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=2)  # runs of one job, the first included
# The periodic sweepers, run by the one beat process.
CELERY_BEAT_SCHEDULE = {
    # Every JOB_SWEEP_SECONDS: jobs whose worker stopped renewing their lease are retried once or failed.
    "jobs-recover-lapsed": {"task": "apps.generations.tasks.jobs_recover_lapsed", "schedule": JOB_SWEEP_SECONDS},
    # Every JOB_SWEEP_SECONDS: queued jobs whose message is really lost (never sent, or gone from the broker).
    "jobs-requeue-lost": {"task": "apps.generations.tasks.jobs_requeue_lost", "schedule": JOB_SWEEP_SECONDS},
    # Every minute: jobs processing past JOB_TIMEOUT_SECONDS fail and their hold is released.
    "jobs-fail-stuck": {"task": "apps.generations.tasks.jobs_fail_stuck", "schedule": 60.0},
    # Every 15 seconds: jobs past their Cancel-After deadline are canceled and credited back (each such job also
    # enqueues this sweep for its deadline; this catches a lost message).
    "jobs-cancel-overdue": {"task": "apps.generations.tasks.jobs_cancel_overdue", "schedule": 15.0},
    # Every minute: webhook tries whose message was lost (or whose worker died mid-try) are sent again.
    "webhooks-sweep": {"task": "apps.webhooks.tasks.webhook_deliveries_sweep", "schedule": 60.0},
    # Every hour: affiliate commissions past their hold period become available.
    "commissions-mature": {"task": "apps.affiliates.tasks.commissions_mature", "schedule": 3600.0},
    # Every hour: commission handovers from billing whose task was lost (broker down) are caught up.
    "commission-catch-up": {"task": "apps.affiliates.tasks.commission_handovers_catch_up", "schedule": 3600.0},
    # Every 5 minutes: payments still in flight after 10 minutes are checked with Stripe (lost webhooks).
    "payments-reconcile": {"task": "apps.billing.tasks.payments_reconcile", "schedule": 300.0},
    # Every hour: Idempotency-Key records older than 24 hours are deleted.
    "idempotency-purge": {"task": "apps.api.tasks.idempotency_purge", "schedule": 3600.0},
}
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# A running request renews its key's lease every third of this; a killed one frees its key this long after.
IDEMPOTENCY_LEASE_SECONDS = env.float("IDEMPOTENCY_LEASE_SECONDS", default=15.0)
# Fetching user-given URLs (uploads, media inputs): caps, and loopback only for tests of the fetcher.
FETCH_MAX_BYTES = env.int("FETCH_MAX_BYTES", default=50 * 1024 * 1024)
FETCH_TIMEOUT_SECONDS = env.float("FETCH_TIMEOUT_SECONDS", default=20.0)
FETCH_ALLOW_PRIVATE_ADDRESSES = env.bool("FETCH_ALLOW_PRIVATE_ADDRESSES", default=False)
# Hosts (names, addresses or networks) a provider account's base URL may reach on a private network: self-hosted
# engines (ComfyUI, Ollama…). User-supplied URLs never reach them. See docs/providers.md.
FETCH_PRIVATE_HOST_ALLOWLIST = env.list("FETCH_PRIVATE_HOST_ALLOWLIST", default=[])
# Media inputs of the local engines: the longest audio or video accepted, and how long one ffmpeg run may take.
MEDIA_MAX_SECONDS = env.float("MEDIA_MAX_SECONDS", default=600.0)
MEDIA_TIMEOUT_SECONDS = env.float("MEDIA_TIMEOUT_SECONDS", default=300.0)
# Keys that encrypt provider credentials at rest (comma-separated, first one encrypts); default: from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
# Upstream providers: retries of 429/5xx/timeouts inside one call, and the polling of long upstream jobs.
UPSTREAM_TIMEOUT_SECONDS = env.float("UPSTREAM_TIMEOUT_SECONDS", default=60.0)
UPSTREAM_RETRIES = env.int("UPSTREAM_RETRIES", default=2)
UPSTREAM_RETRY_BASE_SECONDS = env.float("UPSTREAM_RETRY_BASE_SECONDS", default=1.0)
UPSTREAM_MAX_DOWNLOAD_BYTES = env.int("UPSTREAM_MAX_DOWNLOAD_BYTES", default=500 * 1024 * 1024)
UPSTREAM_DOWNLOAD_TIMEOUT_SECONDS = env.float("UPSTREAM_DOWNLOAD_TIMEOUT_SECONDS", default=600.0)
JOB_POLL_INTERVAL_SECONDS = env.float("JOB_POLL_INTERVAL_SECONDS", default=3.0)
# Job webhooks (docs/agents.md#webhooks): how long one delivery may take, and the waits between retries (seconds;
# the first try is at once, so the default is 9 tries over about 10 hours). A rotated secret keeps signing too
# for the grace period, so receivers can switch without losing deliveries.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=15.0)
WEBHOOK_RETRY_SCHEDULE = env.list(
    "WEBHOOK_RETRY_SCHEDULE", cast=float, default=[5, 30, 120, 600, 1800, 3600, 10800, 21600]
)
WEBHOOK_SECRET_GRACE_SECONDS = env.int("WEBHOOK_SECRET_GRACE_SECONDS", default=24 * 3600)
# Site pages: the showroom, blog and contact form.
DISCORD_URL = env.str("DISCORD_URL", default="")
RATE_CONTACT = env.str("RATE_CONTACT", default="5/hour")  # contact messages per client IP
RATE_SHOWROOM_REPORT = env.str("RATE_SHOWROOM_REPORT", default="10/hour")  # reports per account or client IP
SHOWROOM_PAGE_SIZE = env.int("SHOWROOM_PAGE_SIZE", default=24)
# How long an API key's last_used_at may lag, so key auth writes at most once a minute per key.
API_KEY_TOUCH_SECONDS = 60

# --- Billing (Stripe) -------------------------------------------------------------------------------------------
# Stripe is on when its secret key is set; test keys (sk_test_…) run it in test mode. docs/billing.md.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")  # whsec_… of the /billing/stripe/webhook/ endpoint
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="").rstrip("/")  # empty: Stripe's; e.g. a local localstripe
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
STRIPE_ENABLED = bool(STRIPE_SECRET_KEY)
BILLING_CURRENCY = env.str("BILLING_CURRENCY", default="usd").lower()
CREDIT_PRICE_USD = env.str("CREDIT_PRICE_USD", default="1.00")  # price of one credit, decimal string
TOPUP_MIN_CREDITS = env.str("TOPUP_MIN_CREDITS", default="5")
TOPUP_MAX_CREDITS = env.str("TOPUP_MAX_CREDITS", default="1000")
CREDIT_PACKAGES = env.list("CREDIT_PACKAGES", default=["10", "25", "50", "100"])  # credits, shown on /billing.php
# Processor fee passed on to the buyer (gross-up): the wallet receives exactly the credits bought.
STRIPE_FEE_PERCENT = env.str("STRIPE_FEE_PERCENT", default="2.9")
STRIPE_FEE_FIXED_CENTS = env.int("STRIPE_FEE_FIXED_CENTS", default=30)
# Auto top-up: the most it may charge per account per UTC day and month (accounts may choose lower caps).
AUTOTOPUP_DAILY_CAP_CREDITS = env.str("AUTOTOPUP_DAILY_CAP_CREDITS", default="200")
AUTOTOPUP_MONTHLY_CAP_CREDITS = env.str("AUTOTOPUP_MONTHLY_CAP_CREDITS", default="1000")
AUTOTOPUP_MAX_DECLINES = env.int("AUTOTOPUP_MAX_DECLINES", default=3)  # declines in a row that switch it off
# Links sent to a card holder (saving a card, authenticating a charge) stay valid this long.
BILLING_LINK_MAX_AGE_SECONDS = env.int("BILLING_LINK_MAX_AGE_SECONDS", default=7 * 24 * 3600)
RATE_REDEEM_ACCOUNT = env.str("RATE_REDEEM_ACCOUNT", default="10/hour")  # redemption-code attempts per account
RATE_REDEEM_IP = env.str("RATE_REDEEM_IP", default="30/hour")  # redemption-code attempts per client IP

# --- Affiliate program ------------------------------------------------------------------------------------------
AFFILIATE_COOKIE_DAYS = env.int("AFFILIATE_COOKIE_DAYS", default=30)  # how long a referral link's visit counts
AFFILIATE_COMMISSION_PERCENT = env.str("AFFILIATE_COMMISSION_PERCENT", default="20")  # of net credits purchased
AFFILIATE_COMMISSION_MONTHS = env.int("AFFILIATE_COMMISSION_MONTHS", default=12)  # after the referred sign-up
AFFILIATE_HOLD_DAYS = env.int("AFFILIATE_HOLD_DAYS", default=30)  # pending before it can be used
AFFILIATE_PAYOUT_MIN_CREDITS = env.str("AFFILIATE_PAYOUT_MIN_CREDITS", default="50")
AFFILIATE_CLICK_RATE = env.str("AFFILIATE_CLICK_RATE", default="1/hour")  # clicks counted per IP and code
