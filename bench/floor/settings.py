"""The floor: a bare Django project on the same server, database and pool settings as KiwiWhale, with views that
run only the queries a poll or a submit cannot do without. What KiwiWhale costs above it is our own overhead."""

import environ

env = environ.Env()
DEBUG = False
SECRET_KEY = "bench-floor-only"  # noqa: S105 - a benchmark, never served to anyone
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.floor.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
USE_TZ = True
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 1, "max_size": 20, "timeout": 10.0}}
CELERY_BROKER_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/13")
