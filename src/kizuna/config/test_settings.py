"""Settings for the test suite: SQLite in memory unless DATABASE_URL names another database."""

import os

os.environ.setdefault("KIZUNA_ENV", "test")
os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")

from kizuna.config.settings import *  # noqa: F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405 - extends the imported list
