"""KiwiWhale settings: every environment read lives here (django-environ).

Embedded defaults (no variable set) run the whole platform on one machine: SQLite, local media files,
a Celery broker on the filesystem. Production sets DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and
storage; see `.env.example`.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # git-ignored runtime state of the embedded default

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105

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
]

MIDDLEWARE = [
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
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share one SQLite file: wait for locks instead of failing at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
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
CELERY_TASK_ACKS_LATE = True  # a job whose worker dies is redelivered; the claim makes the rerun harmless
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="kiwiwhale")

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
# Local media is served by Django itself (unguessable paths, no auth); with S3 the bucket serves it.
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
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- API --------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
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
    # Several models have a `status`: name each set of choices after its model.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "apps.generations.models.Job.Status",
        "PaymentStatusEnum": "apps.billing.models.Payment.Status",
    },
    "SERVERS": [{"url": SITE_URL}] if SITE_URL else [],
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
# Quote-to-poll lifecycle of jobs.
JOB_REQUEUE_AFTER_SECONDS = env.int("JOB_REQUEUE_AFTER_SECONDS", default=120)
JOB_TIMEOUT_SECONDS = env.int("JOB_TIMEOUT_SECONDS", default=1800)
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# A running request renews its key's lease every third of this; a killed one frees its key this long after.
IDEMPOTENCY_LEASE_SECONDS = env.float("IDEMPOTENCY_LEASE_SECONDS", default=15.0)
# Fetching user-given URLs (uploads, media inputs): caps, and loopback only for tests of the fetcher.
FETCH_MAX_BYTES = env.int("FETCH_MAX_BYTES", default=50 * 1024 * 1024)
FETCH_TIMEOUT_SECONDS = env.float("FETCH_TIMEOUT_SECONDS", default=20.0)
FETCH_ALLOW_PRIVATE_ADDRESSES = env.bool("FETCH_ALLOW_PRIVATE_ADDRESSES", default=False)
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
JOB_POLL_INTERVAL_SECONDS = env.float("JOB_POLL_INTERVAL_SECONDS", default=3.0)
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
