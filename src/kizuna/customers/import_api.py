"""REST endpoints for imports (mounted at /api/v1/imports by kizuna.config.api)."""

import json
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.responses import Status

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.importing import KINDS, import_and_record
from kizuna.customers.models import ImportJob

router = Router(tags=["imports"])


class RowErrorOut(Schema):
    row: int | None
    column: str | None
    value: str
    message: str


class ImportReportOut(Schema):
    id: int | None = None
    kind: str
    ok: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    error_count: int
    customers_created: int
    products_created: int
    plans_created: int
    ignored_columns: list[str]
    errors: list[RowErrorOut]


class ImportJobOut(Schema):
    id: int
    kind: str
    filename: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    created_by: str | None
    report: dict[str, Any]

    @staticmethod
    def resolve_created_by(job: ImportJob) -> str | None:
        return job.created_by.username if job.created_by else None


class DetailOut(Schema):
    detail: str


def _jobs() -> QuerySet[ImportJob]:
    return ImportJob.objects.select_related("created_by").defer("content")


# Declared before "/{kind}" so that /imports/<number> reaches it rather than the upload route.
@router.get("/{int:job_id}", response={200: ImportJobOut, 404: DetailOut}, summary="One import")
def get_import(request: HttpRequest, job_id: int) -> ImportJob:
    require(request.user, Capability.IMPORT_DATA)
    return get_object_or_404(_jobs(), pk=job_id)


@router.post(
    "/{kind}",
    response={200: ImportReportOut, 400: ImportReportOut, 404: DetailOut, 422: DetailOut},
    summary="Import a CSV or XLSX file of customers, contacts or subscriptions",
)
def create_import(
    request: HttpRequest,
    kind: str,
    file: File[UploadedFile],
    mapping: Form[str] = "",
) -> Status[dict[str, Any]]:
    """Upsert every row of the file, or none: 200 with the counts, 400 with each bad row.

    ``mapping`` is an optional JSON object of file column -> field ("" ignores a column).
    """
    require(request.user, Capability.IMPORT_DATA)
    if kind not in KINDS:
        return Status(
            404, {"detail": f"unknown import kind '{kind}'; use one of: {', '.join(KINDS)}"}
        )
    parsed: dict[str, str] | None = None
    if mapping.strip():
        try:
            loaded = json.loads(mapping)
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict) or not all(
            isinstance(key, str) and isinstance(value, str | None) for key, value in loaded.items()
        ):
            return Status(
                422, {"detail": 'mapping must be a JSON object such as {"Company": "name"}'}
            )
        parsed = {key: value or "" for key, value in loaded.items()}
    actor = request.user if isinstance(request.user, User) else None
    job, report = import_and_record(
        kind=kind,
        content=file.read(),
        filename=file.name or "upload",
        actor=actor,
        mapping=parsed,
    )
    return Status(200 if report.ok else 400, {"id": job.pk, **report.to_dict()})


@router.get("", response=list[ImportJobOut], summary="Recent imports, newest first")
@paginate(LimitOffsetPagination)
def list_imports(request: HttpRequest) -> QuerySet[ImportJob]:
    require(request.user, Capability.IMPORT_DATA)
    return _jobs()
