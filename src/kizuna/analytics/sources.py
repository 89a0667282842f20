"""Sources and their write keys: create, revoke, and the per-process key lookup of ingestion.

A write key is a random secret shown once; only its SHA-256 (``Source.key_hash``) and its
first characters (``key_prefix``, to recognise it in lists) are stored. A write key allows
ingestion and nothing else: it is not an ``ApiToken`` and the REST API does not know it.

The ingestion endpoints look a key up on every request, so each process keeps the answer for
``KEY_CACHE_SECONDS``: a revocation made anywhere takes effect everywhere within that time.
"""

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.analytics.models import Source
from kizuna.core.models import User

WRITE_KEY_PREFIX = "kzw_"
KEY_PREFIX_LENGTH = 8
KEY_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class KeyLookup:
    """What a write key names: a source, active or revoked."""

    source_id: int
    name: str
    active: bool


_cache: dict[str, tuple[float, KeyLookup | None]] = {}
_cache_lock = threading.Lock()


def hash_write_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_write_key() -> str:
    """A new write key: 256 random bits, URL-safe, recognisable by its ``kzw_`` prefix."""
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(32)


def create_source(
    *, name: str, created_by: User | None = None, group_id_trait: str = ""
) -> tuple[Source, str]:
    """Create a source; return it with its write key (shown once, never stored)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("A source needs a name.")})
    if len(name) > 100:
        raise ValidationError({"name": _("A source name has at most 100 characters.")})
    raw = generate_write_key()
    try:
        with transaction.atomic():
            source = Source.objects.create(
                name=name,
                key_prefix=raw[:KEY_PREFIX_LENGTH],
                key_hash=hash_write_key(raw),
                group_id_trait=group_id_trait.strip(),
                created_by=created_by,
            )
    except IntegrityError:
        raise ValidationError(
            {"name": _("A source named “%(name)s” already exists.") % {"name": name}}
        ) from None
    clear_key_cache()
    return source, raw


def revoke_source(*, name: str) -> Source:
    """Revoke the source's write key (idempotent); its events stay in the inbox and the lake."""
    try:
        source = Source.objects.get(name=name)
    except Source.DoesNotExist:
        raise ValidationError(
            {"name": _("There is no source named “%(name)s”.") % {"name": name}}
        ) from None
    if source.revoked_at is None:
        source.revoked_at = timezone.now()
        source.save(update_fields=["revoked_at"])
    clear_key_cache()
    return source


def lookup_write_key(raw: str) -> KeyLookup | None:
    """The source a write key belongs to (``None`` when unknown), cached briefly per process."""
    key_hash = hash_write_key(raw)
    now = time.monotonic()
    cached = _cache.get(key_hash)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = Source.objects.filter(key_hash=key_hash).values_list("id", "name", "revoked_at").first()
    found = None if row is None else KeyLookup(row[0], row[1], row[2] is None)
    with _cache_lock:
        if len(_cache) > 10_000:  # unknown keys must not grow the cache without bound
            _cache.clear()
        _cache[key_hash] = (now + KEY_CACHE_SECONDS, found)
    return found


def clear_key_cache() -> None:
    """Forget cached key lookups in this process (other processes forget within seconds)."""
    with _cache_lock:
        _cache.clear()
