"""Settings, read from the environment once at boot (env.py; docs/architecture.md).

Profiles: `dev` (default: SQLite under var/, generated secret), `test`, `prod` (secrets required,
HTTPS hardening on). Every value is typed; a bad one raises ImproperlyConfigured at import.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from boneage.env import env_base_url, env_bool, env_choice, env_int, env_list, env_str

REPO_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(env_str("BONEAGE_VAR_DIR", str(REPO_DIR / "var")) or "")
PROFILE = env_choice("BONEAGE_PROFILE", "dev", ("dev", "test", "prod"))
PRODUCTION = PROFILE == "prod"

DEBUG = env_bool("DEBUG", PROFILE == "dev")


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if PRODUCTION and (len(key) < 50 or len(set(key)) < 5):
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters in production")
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when BONEAGE_PROFILE=prod")
    # Development: one random key per checkout, kept so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when BONEAGE_PROFILE=prod")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "boneage.audit",
    "boneage.studies",
    "boneage.annotations",
    "boneage.modeling",
    "boneage.review",
    "boneage.live",
    "boneage.web",
    "boneage.dicomweb",
    "boneage.ops",
    "boneage.pipeline",  # after the apps whose signals it receives (docs/architecture.md)
]

# /metrics (Prometheus text format) answers only when this is on; request metrics are then collected too.
METRICS_ENABLED = env_bool("METRICS_ENABLED", False)

MIDDLEWARE = [
    "boneage.api.JsonApiErrorsMiddleware",  # first: it sees every /api/ response, whoever made it
    *(["boneage.ops.metrics.RequestMetricsMiddleware"] if METRICS_ENABLED else []),
    "django.middleware.security.SecurityMiddleware",
    "boneage.dicomweb.cors.DicomWebCorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "boneage.urls"
ASGI_APPLICATION = "boneage.asgi.application"
WSGI_APPLICATION = "boneage.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [REPO_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
try:
    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0))
except Exception as exc:  # dj_database_url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} is not a database URL: {exc}") from exc
if _database["ENGINE"] == "django.db.backends.sqlite3":
    Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL + immediate transactions: the web process and the worker write at the same time.
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
elif _database["ENGINE"] == "django.db.backends.postgresql" and not env_bool("DB_JIT", False):
    # PostgreSQL's JIT compiles any query its planner thinks costly: the worklist's "active" order at 100k studies
    # spent 120 of its 188 ms compiling (docs/benchmarks.md, growth figures). Short app queries never earn it back.
    _database.setdefault("OPTIONS", {})["options"] = "-c jit=off"
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and Channels layer ---------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0") or ""
if urlparse(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must start with redis://, rediss:// or unix://")

# channels-redis waits for a socket's next message with a blocking BZPOPMIN of CHANNELS_BLOCKING_POP_S (its
# brpop_timeout, 5 s) on a pooled connection; redis-py's default socket_timeout is also 5 s, so on an idle socket the
# read timed out first and killed the consumer. The read timeout must outlast the blocking pop (a host dict passes
# its keys to redis-py's ConnectionPool.from_url); it still ends a read from a Redis that really stopped answering.
CHANNELS_BLOCKING_POP_S = 5
CHANNELS_REDIS_SOCKET_TIMEOUT_S = env_int("CHANNELS_REDIS_SOCKET_TIMEOUT_S", 30, minimum=CHANNELS_BLOCKING_POP_S + 5)
# The channel layer: Redis pub/sub by default. channels-redis's list layer reads a process's messages one at a time
# (four Redis round trips each, under one lock), so one Daphne process serving 50 sockets under a 20-labeler load fell
# further behind every second (p50 delay 4 s → 24 s within a minute) until its 60-s message expiry dropped whole
# events for every socket (22 % in 5 minutes). Pub/sub delivered the same load with p95 < 0.5 s and none lost
# (docs/benchmarks.md, load). Pages still notice a gap in the events' seq numbers and reload (core.events).
CHANNELS_CAPACITY = env_int("CHANNELS_CAPACITY", 1000, minimum=100)  # list layer only: events waiting per process
CHANNELS_LAYER = env_choice("CHANNELS_LAYER", "pubsub", ("pubsub", "lists"))
_CHANNELS_HOST = {"address": REDIS_URL, "socket_timeout": CHANNELS_REDIS_SOCKET_TIMEOUT_S, "socket_connect_timeout": 5,
                  "socket_keepalive": True, "health_check_interval": 15}
# Redis pub/sub channels ignore the database number (keys do not): two deployments, or two test runs, on one Redis
# with different db numbers heard each other's events until the prefix carried the db number.
_REDIS_DB = "".join(c for c in urlparse(REDIS_URL).path if c.isdigit()) or "0"
_CHANNELS_PREFIX = env_str("CHANNELS_PREFIX", f"boneage{_REDIS_DB}") or f"boneage{_REDIS_DB}"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [_CHANNELS_HOST], "prefix": _CHANNELS_PREFIX},
    } if CHANNELS_LAYER == "pubsub" else {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [_CHANNELS_HOST], "prefix": _CHANNELS_PREFIX, "capacity": CHANNELS_CAPACITY},
    }
}

# Longest hard time limit of any task (training); the broker must not redeliver a task that is
# still running, so the visibility timeout is longer (docs/architecture.md, Workers and queues).
TRAINING_HARD_TIME_LIMIT_S = env_int("TRAINING_HARD_TIME_LIMIT_S", 4 * 3600, minimum=60)
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": TRAINING_HARD_TIME_LIMIT_S + 600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
# Every task that runs the network goes to the gpu queue (docs/architecture.md, Workers and queues); everything else to cpu, the default.
CELERY_TASK_ROUTES = {name: {"queue": "gpu"} for name in (
    "modeling.predict_study", "modeling.train", "modeling.repredict")}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A prefork pool child (the cpu worker) whose resident memory passed this after a task is replaced before its next one
# (Celery's worker_max_memory_per_child, in KiB): what a leak or one huge film leaves behind does not pile up. A child
# holds ~1 GiB once torch is imported; the solo pool (gpu workers) ignores it (docs/scaling.md, Limits).
WORKER_MAX_MEMORY_PER_CHILD_MB = env_int("WORKER_MAX_MEMORY_PER_CHILD_MB", 2048, minimum=512)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = WORKER_MAX_MEMORY_PER_CHILD_MB * 1024

# --- Files ---------------------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")) or "")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [REPO_DIR / "frontend" / "static"]
S3_BUCKET = env_str("S3_BUCKET")
# Local copies of bucket objects that need a real path (checkpoints, training images); never under MEDIA_ROOT.
STORAGE_CACHE_DIR = Path(env_str("STORAGE_CACHE_DIR", str(VAR_DIR / "cache")) or "")
STORAGES = {
    "default": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            # Credentials come the standard AWS way (AWS_ACCESS_KEY_ID/…, a profile or the instance role).
            "OPTIONS": {"bucket_name": S3_BUCKET, "endpoint_url": env_str("S3_ENDPOINT_URL") or None,
                        "region_name": env_str("AWS_DEFAULT_REGION") or None, "default_acl": None,
                        "file_overwrite": True},
        }
        if S3_BUCKET
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise

# --- Upload limits -------------------------------------------------------------------------------
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 64 * 1024 * 1024, minimum=1024)
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 50, minimum=1)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 64_000_000, minimum=10_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES  # keep an upload in memory: no temp-file round trip
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
DISPLAY_MAX_SIDE = env_int("DISPLAY_MAX_SIDE", 1024, minimum=128)
# Every decode of a stored film runs in a child process (studies.isolated_decode, issue 34): the address space it may
# add once its imports are in (a 2500 × 2000 film needs ~100 MiB, the 64-million-pixel film the bounds allow ~1.7 GiB),
# its wall-clock limit (under the derive task's soft limit of 120 s) and how many run at once per process (docs/scaling.md).
DECODE_MEMORY_MB = env_int("DECODE_MEMORY_MB", 2048, minimum=256)
DECODE_TIMEOUT_S = env_int("DECODE_TIMEOUT_S", 60, minimum=5)
DECODE_CONCURRENCY = env_int("DECODE_CONCURRENCY", 2, minimum=1)
if DECODE_TIMEOUT_S >= 120:
    raise ImproperlyConfigured(f"DECODE_TIMEOUT_S={DECODE_TIMEOUT_S} must stay under the derive task's 120-s soft limit")
# Every study also keeps the network's input at this size (the default architecture's work_size): a re-prediction
# decodes that small copy, not the full image (docs/benchmarks.md, re-prediction). Other work sizes decode in full.
NETWORK_WORK_SIDE = env_int("NETWORK_WORK_SIDE", 256, minimum=32)
# A re-prediction writes batch k's files while the network predicts k+1: "auto" = on an accelerator only (on a CPU the
# network needs every core; boneage.modeling.conf.repredict_overlaps).
REPREDICT_OVERLAP = env_choice("REPREDICT_OVERLAP", "auto", ("auto", "on", "off"))

# --- DICOMweb (docs/dicomweb.md) -----------------------------------------------------------------
DICOMWEB_STOW_MAX_BYTES = env_int("DICOMWEB_STOW_MAX_BYTES", 4 * UPLOAD_MAX_BYTES, minimum=UPLOAD_MAX_BYTES)
# Origins of browser viewers (OHIF) allowed to call /dicomweb/ with a token; none by default.
DICOMWEB_CORS_ORIGINS = env_list("DICOMWEB_CORS_ORIGINS", [])
# The platform's public base URL (e.g. https://boneage.example.org): RetrieveURL and BulkDataURI are built on it, not on
# the request's Host header (which a client or proxy may send without its port). Unset: from the request.
DICOMWEB_BASE_URL = env_base_url("DICOMWEB_BASE_URL")
# The DICOM node (`manage.py dicom_node`, started by `make run`): the TCP port its Storage SCP listens on, and the
# address it binds (all interfaces by default: modalities are other machines). The called AE title picks the project.
DICOM_PORT = env_int("DICOM_PORT", 11112, minimum=1)
if DICOM_PORT > 65535:
    raise ImproperlyConfigured(f"DICOM_PORT={DICOM_PORT} is not a TCP port (1–65535)")
DICOM_BIND = env_str("DICOM_BIND", "0.0.0.0") or "0.0.0.0"

# --- Auth, API -----------------------------------------------------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/projects/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# OpenID Connect login (boneage.oidc; docs/oidc.md): off unless the issuer, the client id and its secret are all
# set; any other OIDC_* variable without them is a half-configured login and stops the boot.
OIDC_ISSUER = env_base_url("OIDC_ISSUER")
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID") or ""
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET") or ""
_OIDC_REQUIRED = {"OIDC_ISSUER": OIDC_ISSUER, "OIDC_CLIENT_ID": OIDC_RP_CLIENT_ID, "OIDC_CLIENT_SECRET": OIDC_RP_CLIENT_SECRET}
_OIDC_OPTIONAL = ("OIDC_PROVIDER_NAME", "OIDC_SIGN_ALGO", "OIDC_CREATE_USERS", "OIDC_ALLOWED_EMAIL_DOMAINS",
                  "OIDC_TIMEOUT_S")
if any(_OIDC_REQUIRED.values()) or any(os.environ.get(name) is not None for name in _OIDC_OPTIONAL):
    _missing = [name for name, value in _OIDC_REQUIRED.items() if not value]
    if _missing:
        raise ImproperlyConfigured(f"OpenID Connect login is half-configured: {', '.join(_missing)} missing "
                                   "(OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET go together)")
    if PRODUCTION and not OIDC_ISSUER.startswith("https://"):
        raise ImproperlyConfigured(f"OIDC_ISSUER={OIDC_ISSUER!r} must be https:// when BONEAGE_PROFILE=prod")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on") or "single sign-on"
OIDC_RP_SIGN_ALGO = env_choice("OIDC_SIGN_ALGO", "RS256", ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512"))
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USERS", False)  # a first login without an account creates one (no project)
OIDC_ALLOWED_EMAIL_DOMAINS = [domain.lower() for domain in env_list("OIDC_ALLOWED_EMAIL_DOMAINS", [])]
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_S", 10, minimum=1)
OIDC_VERIFY_SSL = True
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
LOGIN_REDIRECT_URL_FAILURE = LOGIN_URL
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "boneage.oidc.OidcBackend"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [  # the token first: without credentials, a 401 with WWW-Authenticate
        "boneage.api_auth.BearerOrTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "boneage.api_input.BoundedPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "boneage.api_input.BrowsableApi"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "boneage.api_input.JsonWhenNothingElseFits",  # never a 406: image clients
    "DEFAULT_PARSER_CLASSES": ["boneage.api_input.JSONParser", "boneage.api_input.FormParser",
                               "boneage.api_input.MultiPartParser"],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "boneage.api.json_error_handler",
}
# The schema maps every operation an attacker could try: behind login unless opened.
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", False)
SPECTACULAR_SETTINGS = {
    "TITLE": "Bone age platform API",
    "DESCRIPTION": "Studies, masks, labels, predictions, training runs, models and the review queue.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["boneage.api_input.SchemaReaders"],  # behind login unless API_DOCS_PUBLIC
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "boneage.api.document_errors"],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- Production hardening (check --deploy is clean) ----------------------------------------------
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$", r"^metrics$"]  # probes and scrapers speak plain HTTP in-cluster
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
