"""Import pages: upload, preview and column mapping, confirm, report."""

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _

from kizuna.core.access import requires
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.importing import create_import_job, preview_file, run_import_job
from kizuna.customers.models import ImportJob, ImportKind, ImportStatus

RECENT_IMPORTS = 20


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file holds"), choices=ImportKind.choices)
    file = forms.FileField(
        label=_("CSV or XLSX file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,.xlsx"}),
    )


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


@requires(Capability.IMPORT_DATA)
def upload(request: HttpRequest) -> HttpResponse:
    """Choose the kind and the file; the file is kept until the mapping is confirmed."""
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        uploaded = form.cleaned_data["file"]
        job = create_import_job(
            kind=form.cleaned_data["kind"],
            filename=uploaded.name or "upload",
            content=uploaded.read(),
            created_by=_user(request),
        )
        return redirect("customers:import-preview", pk=job.pk)
    recent = ImportJob.objects.select_related("created_by").defer("content")[:RECENT_IMPORTS]
    return render(
        request,
        "customers/import_upload.html",
        {"area": "customers", "form": form, "recent": recent},
        status=400 if request.method == "POST" else 200,
    )


@requires(Capability.IMPORT_DATA)
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The file's columns with a field for each, and its first rows; POST imports it."""
    job = get_object_or_404(ImportJob, pk=pk)
    if job.status == ImportStatus.SUCCEEDED:
        return redirect("customers:import-report", pk=job.pk)
    result = preview_file(kind=job.kind, content=bytes(job.content), filename=job.filename)
    if request.method == "POST":
        mapping = {
            header: request.POST.get(f"map-{index}", "")
            for index, header in enumerate(result.headers)
            if header
        }
        run_import_job(job=job, actor=_user(request), mapping=mapping)
        return redirect("customers:import-report", pk=job.pk)
    # After a rejected attempt, offer the mapping that was tried.
    chosen = {**result.suggested, **job.mapping} if job.mapping else result.suggested
    columns = [
        {"index": index, "header": header, "field": chosen.get(header, "")}
        for index, header in enumerate(result.headers)
    ]
    return render(
        request,
        "customers/import_preview.html",
        {
            "area": "customers",
            "job": job,
            "preview": result,
            "columns": columns,
            "required": [spec.name for spec in result.fields if spec.required],
        },
    )


@requires(Capability.IMPORT_DATA)
def report(request: HttpRequest, pk: int) -> HttpResponse | HttpResponseRedirect:
    """What the import did, or each bad row and why nothing was imported."""
    job = get_object_or_404(ImportJob.objects.select_related("created_by").defer("content"), pk=pk)
    if job.status == ImportStatus.UPLOADED:
        return redirect("customers:import-preview", pk=job.pk)
    return render(
        request,
        "customers/import_report.html",
        {"area": "customers", "job": job, "report": job.report},
    )
