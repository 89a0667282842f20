"""Kizuna settings, read from environment variables.

Production is the default: ``DEBUG`` is off, ``SECRET_KEY`` and ``ALLOWED_HOSTS`` must be given.
``KIZUNA_ENV=dev`` (set by ``make demo``) switches to the obvious local defaults.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

SRC_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = SRC_DIR.parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


KIZUNA_ENV = os.environ.get("KIZUNA_ENV", "prod")
DEV = KIZUNA_ENV in {"dev", "test"}
DEBUG = _env_bool("DEBUG", KIZUNA_ENV == "dev")

DATA_DIR = Path(os.environ.get("KIZUNA_DATA_DIR", PROJECT_DIR / "var"))

_secret = os.environ.get("SECRET_KEY")
if not _secret:
    if not DEV:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it (and ALLOWED_HOSTS) in production, "
            "or KIZUNA_ENV=dev for local use."
        )
    _secret = "dev-insecure-kizuna-secret-key-change-me-in-production-0123456789"  # noqa: S105 - dev default only
SECRET_KEY = _secret
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEV else "")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",
    "kizuna.core",
    "kizuna.customers",
    "kizuna.analytics",
    "kizuna.onboarding",
    "kizuna.health",
    "kizuna.lifecycle",
    "kizuna.playbooks",
    "kizuna.reports",
    "kizuna.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "kizuna.config.urls"
WSGI_APPLICATION = "kizuna.config.wsgi.application"
ASGI_APPLICATION = "kizuna.config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SRC_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kizuna.core.context_processors.navigation",
            ],
        },
    },
]

_default_db = f"sqlite:///{DATA_DIR / 'kizuna.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", _default_db), conn_max_age=60, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 600
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "core.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["kizuna.core.auth.ThrottledModelBackend"]
LOGIN_URL = "core:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "core:login"
# Failed logins allowed per username (and per client address) within the window before refusing.
KIZUNA_LOGIN_MAX_FAILURES = int(os.environ.get("KIZUNA_LOGIN_MAX_FAILURES", "5"))
KIZUNA_LOGIN_FAILURE_WINDOW_SECONDS = int(
    os.environ.get("KIZUNA_LOGIN_FAILURE_WINDOW_SECONDS", "900")
)

LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", _("Japanese")), ("en", _("English"))]
LOCALE_PATHS = [SRC_DIR / "locale"]
LANGUAGE_COOKIE_NAME = "kizuna_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Tokyo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [SRC_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Base currency of reports; other currencies convert with these rates (units of base per unit).
KIZUNA_BASE_CURRENCY = os.environ.get("KIZUNA_BASE_CURRENCY", "JPY")
# Shown to customers on their onboarding plan page.
KIZUNA_COMPANY_NAME = os.environ.get("KIZUNA_COMPANY_NAME", "")
KIZUNA_CURRENCY_RATES: dict[str, float] = {
    code.strip().upper(): float(rate)
    for code, _sep, rate in (
        item.partition("=") for item in _env_list("KIZUNA_CURRENCY_RATES", "") if "=" in item
    )
}

# Usage analytics: the engine that reads the event lake, and how ingestion de-duplicates.
KIZUNA_ANALYTICS_ENGINE = os.environ.get("KIZUNA_ANALYTICS_ENGINE", "duckdb")
KIZUNA_DUCKDB_THREADS = int(os.environ.get("KIZUNA_DUCKDB_THREADS", "2"))
KIZUNA_SPARK_MASTER = os.environ.get("KIZUNA_SPARK_MASTER", "local[2]")
KIZUNA_SPARK_DRIVER_MEMORY = os.environ.get("KIZUNA_SPARK_DRIVER_MEMORY", "2g")
# A messageId seen again within this many days after it reached the lake is not counted twice.
KIZUNA_DEDUP_DAYS = int(os.environ.get("KIZUNA_DEDUP_DAYS", "7"))
# The address shown in Settings → Sources as the host to give an SDK (empty: the request's).
KIZUNA_INGEST_HOST = os.environ.get("KIZUNA_INGEST_HOST", "")

SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = _env_bool("SECURE_COOKIES", not DEV)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

from django.utils.csp import CSP  # noqa: E402 - kept beside the policy it builds

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Email (playbook notifications; later journeys and surveys). SMTP in production; locally the
# messages are written as files under KIZUNA_DATA_DIR/outbox so nothing leaves the machine.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if KIZUNA_ENV == "dev"
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = DATA_DIR / "outbox"
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "kizuna@localhost")
