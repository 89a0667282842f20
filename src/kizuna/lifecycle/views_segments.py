"""Settings → Segments: the ordered list, the editor with its live preview, delete and move.

Doors only: check ``MANAGE_LIFECYCLE``, parse the form, call one service in ``segments``.
"""

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core.access import requires
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.lifecycle import conditions, segments
from kizuna.lifecycle.forms_segments import SegmentForm
from kizuna.lifecycle.models import Segment


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _error_mark(expression: str, preview: segments.Preview | None) -> dict[str, str] | None:
    """The rule cut around the error position, to highlight the offending character."""
    if preview is None or preview.position is None:
        return None
    position = preview.position
    at = expression[position : position + 1]
    return {
        "before": expression[:position],
        "at": at if at.strip() else "\u2423",  # ␣: a visible space or end of the rule
        "after": expression[position + 1 :],
    }


def _moved_message(moved: int) -> str:
    return ngettext(
        "%(count)d customer changed segment.", "%(count)d customers changed segment.", moved
    ) % {"count": moved}


@require_GET
@requires(Capability.MANAGE_LIFECYCLE)
def segment_list(request: HttpRequest) -> HttpResponse:
    """The segments in evaluation order with their rules and current member counts."""
    counts = segments.segment_counts()
    rows = list(Segment.objects.order_by("position", "id"))
    keys = {segment.key for segment in rows}
    context = {
        "area": "settings",
        "tab": "segments",
        "rows": [{"segment": segment, "members": counts.get(segment.key, 0)} for segment in rows],
        "total": sum(counts.values()),
        "unassigned": counts.get("", 0),
        "other": sum(count for key, count in counts.items() if key and key not in keys),
        "has_active": any(segment.is_active for segment in rows),
    }
    return render(request, "lifecycle/segments.html", context)


def _editor(
    request: HttpRequest, form: SegmentForm, segment: Segment | None, *, status: int = 200
) -> HttpResponse:
    expression = str(form["expression"].value() or "")
    preview = segments.preview(expression, segment=segment) if expression.strip() else None
    context = {
        "area": "settings",
        "tab": "segments",
        "form": form,
        "segment": segment,
        "fields": conditions.describe_fields(),
        "metric_help": conditions.METRIC_FIELD_HELP,
        "preview": preview,
        "mark": _error_mark(expression, preview),
        "expression": expression,
    }
    return render(request, "lifecycle/segment_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_LIFECYCLE)
def segment_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create (no ``pk``) or edit a segment; saving re-evaluates every customer's segment."""
    segment = get_object_or_404(Segment, pk=pk) if pk is not None else None
    if request.method == "GET":
        return _editor(request, SegmentForm(segment=segment), segment)
    form = SegmentForm(request.POST, segment=segment)
    if form.is_valid():
        data = form.cleaned_data
        try:
            saved = segments.save_segment(
                name=data["name"],
                key=data["key"],
                description=data["description"],
                expression=data["expression"],
                is_active=data["is_active"],
                segment=segment,
                actor=_user(request),
            )
        except segments.SegmentError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(
                request,
                _("Segment “%(name)s” saved.") % {"name": saved.segment.name}
                + " "
                + _moved_message(saved.moved),
            )
            return redirect("lifecycle:segments")
    return _editor(request, form, segment, status=400)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_LIFECYCLE)
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes and re-evaluates."""
    segment = get_object_or_404(Segment, pk=pk)
    if request.method == "GET":
        context = {
            "area": "settings",
            "tab": "segments",
            "segment": segment,
            "members": segments.segment_counts().get(segment.key, 0),
        }
        return render(request, "lifecycle/segment_delete.html", context)
    moved = segments.delete_segment(key=segment.key, actor=_user(request))
    messages.success(
        request,
        _("Segment “%(name)s” deleted.") % {"name": segment.name} + " " + _moved_message(moved),
    )
    return redirect("lifecycle:segments")


@require_POST
@requires(Capability.MANAGE_LIFECYCLE)
def segment_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a segment one place up (``direction=up``) or down; order decides membership."""
    segment = get_object_or_404(Segment, pk=pk)
    offset = -1 if request.POST.get("direction") == "up" else 1
    moved = segments.move_segment(key=segment.key, offset=offset, actor=_user(request))
    messages.success(request, _moved_message(moved))
    return redirect("lifecycle:segments")


@require_POST
@requires(Capability.MANAGE_LIFECYCLE)
def segment_preview(request: HttpRequest) -> HttpResponse:
    """The live preview fragment for the posted ``expression`` (and ``segment`` pk if editing)."""
    segment: Segment | None = None
    raw_pk = request.POST.get("segment", "")
    if raw_pk.isdigit():
        segment = Segment.objects.filter(pk=int(raw_pk)).first()
    expression = request.POST.get("expression", "")[: conditions.MAX_EXPRESSION_LENGTH + 1]
    preview = segments.preview(expression, segment=segment) if expression.strip() else None
    context: dict[str, Any] = {
        "preview": preview,
        "mark": _error_mark(expression, preview),
        "expression": expression,
        "segment": segment,
        "customer_count": Customer.objects.count() if preview is None else None,
    }
    return render(request, "lifecycle/segment_preview.html", context)
