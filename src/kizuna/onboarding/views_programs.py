"""Settings → Onboarding programs: the list, a program's versions, and the editor of a draft.

Only a draft version is edited (phases, milestones with their completion rule and resources,
follow-ups); a published or retired version is shown read-only, and changing it means making
a new draft with a change note. Publishing is the engine's (``programs.publish``), which lists
what prevents it.
"""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max, Prefetch, Q
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core.access import requires
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.onboarding import programs
from kizuna.onboarding.forms import (
    FollowUpForm,
    MilestoneForm,
    NewVersionForm,
    PhaseForm,
    ProgramForm,
    ProgramSettingsForm,
    ResourceForm,
    VersionSettingsForm,
)
from kizuna.onboarding.models import (
    FollowUp,
    Milestone,
    Phase,
    Program,
    ProgramVersion,
    Resource,
    VersionStatus,
)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _settings(**extra: Any) -> dict[str, Any]:
    return {"area": "settings", "tab": "programs", **extra}


# --- The list ------------------------------------------------------------------------------------


def _programs_page(
    request: HttpRequest, form: ProgramForm | None = None, *, status: int = 200
) -> HttpResponse:
    rows = Program.objects.annotate(
        plans_count=Count("versions__plans", distinct=True),
        published_number=Max(
            "versions__number", filter=Q(versions__status=VersionStatus.PUBLISHED)
        ),
        draft_number=Max("versions__number", filter=Q(versions__status=VersionStatus.DRAFT)),
    ).order_by("priority", "name")
    context = _settings(programs=rows, form=form or ProgramForm(), form_open=form is not None)
    return render(request, "onboarding/programs.html", context, status=status)


@require_GET
@requires(Capability.MANAGE_PROGRAMS)
def program_list(request: HttpRequest) -> HttpResponse:
    """The programs: who each is for, its published version, its plans."""
    return _programs_page(request)


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def program_create(request: HttpRequest) -> HttpResponse:
    """Create a program with an empty draft version 1 and open that draft."""
    form = ProgramForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            program = programs.create_program(
                key=data["key"],
                name=data["name"],
                description=data["description"],
                touch_model=data["touch_model"],
                segment_key=data["segment_key"],
                priority=data["priority"],
                target_days=data["target_days"],
                actor=_user(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Program “%(name)s” created.") % {"name": program.name})
            draft = program.versions.order_by("-number").first()
            if draft is not None:
                return redirect("onboarding:program-version", draft.pk)
            return redirect("onboarding:program", program.pk)
    return _programs_page(request, form, status=400)


# --- A program -----------------------------------------------------------------------------------


def _program_page(
    request: HttpRequest,
    program: Program,
    *,
    settings_form: ProgramSettingsForm | None = None,
    version_form: NewVersionForm | None = None,
    status: int = 200,
) -> HttpResponse:
    versions = program.versions.annotate(plans_count=Count("plans")).select_related("created_by")
    context = _settings(
        program=program,
        versions=versions,
        has_draft=any(version.status == VersionStatus.DRAFT for version in versions),
        settings_form=settings_form or ProgramSettingsForm(instance=program),
        version_form=version_form or NewVersionForm(),
    )
    return render(request, "onboarding/program.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PROGRAMS)
def program_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A program's versions; POST saves who the program is for (name, touch model, segment…)."""
    program = get_object_or_404(Program, pk=pk)
    if request.method == "GET":
        return _program_page(request, program)
    form = ProgramSettingsForm(request.POST, instance=program)
    if form.is_valid():
        form.save()
        messages.success(request, _("Program saved."))
        return redirect("onboarding:program", program.pk)
    return _program_page(request, Program.objects.get(pk=pk), settings_form=form, status=400)


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def version_new(request: HttpRequest, pk: int) -> HttpResponse:
    """A new draft copied from the latest version, with a note saying what changes."""
    program = get_object_or_404(Program, pk=pk)
    form = NewVersionForm(request.POST)
    if form.is_valid():
        had_draft = program.versions.filter(status=VersionStatus.DRAFT).exists()
        try:
            with transaction.atomic():
                draft = programs.new_draft(program, actor=_user(request))
                if not had_draft:
                    draft.change_note = form.cleaned_data["change_note"]
                    draft.save(update_fields=["change_note"])
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            if had_draft:
                messages.warning(request, _("This program already has a draft: here it is."))
            else:
                messages.success(
                    request, _("Draft version %(number)d created.") % {"number": draft.number}
                )
            return redirect("onboarding:program-version", draft.pk)
    return _program_page(request, program, version_form=form, status=400)


# --- The version editor --------------------------------------------------------------------------


def _version(pk: int) -> ProgramVersion:
    return get_object_or_404(ProgramVersion.objects.select_related("program", "created_by"), pk=pk)


def _version_content(version: ProgramVersion) -> list[Phase]:
    """The version's phases with their milestones, resources and dependencies (a few queries)."""
    milestones = Milestone.objects.order_by("position", "id").prefetch_related(
        Prefetch("resources", queryset=Resource.objects.order_by("id")), "depends_on"
    )
    return list(
        version.phases.order_by("position", "id").prefetch_related(
            Prefetch("milestones", queryset=milestones)
        )
    )


def _version_page(
    request: HttpRequest, version: ProgramVersion, *, status: int = 200, **extra: Any
) -> HttpResponse:
    editable = version.status == VersionStatus.DRAFT
    context = _settings(
        version=version,
        program=version.program,
        editable=editable,
        phases=_version_content(version),
        follow_ups=list(version.follow_ups.order_by("day_offset", "id")),
        plans_count=version.plans.count(),
        **extra,
    )
    if editable:
        context.setdefault("phase_form", PhaseForm())
        context.setdefault("follow_up_form", FollowUpForm())
        context.setdefault("settings_form", VersionSettingsForm(instance=version))
        context.setdefault("problems", programs.validation_problems(version))
    return render(request, "onboarding/version.html", context, status=status)


def _editable(request: HttpRequest, version: ProgramVersion) -> HttpResponse | None:
    """None for a draft; else the answer refusing to change a published or retired version."""
    if version.status == VersionStatus.DRAFT:
        return None
    messages.error(
        request,
        _("Version %(number)d is %(status)s and read-only: make a new version to change it.")
        % {"number": version.number, "status": version.get_status_display()},
    )
    return _version_page(request, version, status=409)


@require_GET
@requires(Capability.MANAGE_PROGRAMS)
def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The editor of a draft, or a read-only view of a published or retired version."""
    return _version_page(request, _version(pk))


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def version_settings(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    form = VersionSettingsForm(request.POST, instance=version)
    if form.is_valid():
        form.save()
        messages.success(request, _("Saved."))
        return redirect("onboarding:program-version", version.pk)
    return _version_page(request, _version(pk), settings_form=form, status=400)


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def version_publish(request: HttpRequest, pk: int) -> HttpResponse:
    """Publish the draft; what prevents it is listed on the page."""
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    try:
        programs.publish(version, actor=_user(request))
    except ValidationError as exc:
        return _version_page(request, version, status=400, publish_errors=exc.messages)
    messages.success(
        request,
        _("Version %(number)d is published: new plans are made from it.")
        % {"number": version.number},
    )
    return redirect("onboarding:program-version", version.pk)


# Phases


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def phase_add(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    form = PhaseForm(request.POST)
    if not form.is_valid():
        return _version_page(request, version, phase_form=form, status=400)
    last = version.phases.aggregate(last=Max("position"))["last"]
    Phase.objects.create(
        version=version, name=form.cleaned_data["name"], position=0 if last is None else last + 1
    )
    return redirect(reverse("onboarding:program-version", args=[version.pk]) + "#phases")


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def phase_edit(request: HttpRequest, pk: int, phase_pk: int) -> HttpResponse:
    """Rename a phase (``name``), move it (``move=up|down``) or delete an empty one (``delete``)."""
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    phase = get_object_or_404(version.phases, pk=phase_pk)
    if "delete" in request.POST:
        if phase.milestones.exists():
            messages.error(request, _("Move or delete the phase's milestones first."))
        else:
            phase.delete()
    elif request.POST.get("move") in ("up", "down"):
        _move_phase(version, phase, up=request.POST["move"] == "up")
    else:
        form = PhaseForm(request.POST, instance=phase)
        if not form.is_valid():
            return _version_page(
                request, version, rename_form=form, rename_phase=phase.pk, status=400
            )
        form.save()
    return redirect(reverse("onboarding:program-version", args=[version.pk]) + "#phases")


@transaction.atomic
def _move_phase(version: ProgramVersion, phase: Phase, *, up: bool) -> None:
    """Swap the phase with its neighbour and renumber the phases 0, 1, 2…"""
    ordered = list(version.phases.order_by("position", "id"))
    index = next(i for i, item in enumerate(ordered) if item.pk == phase.pk)
    other = index - 1 if up else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, item in enumerate(ordered):
        item.position = position
    Phase.objects.bulk_update(ordered, ["position"])


# Milestones


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PROGRAMS)
def milestone_form(request: HttpRequest, pk: int, milestone_pk: int | None = None) -> HttpResponse:
    """Add (no ``milestone_pk``) or edit a milestone of a draft; GET of a published one is read-only."""
    version = _version(pk)
    milestone = (
        get_object_or_404(version.milestones, pk=milestone_pk) if milestone_pk is not None else None
    )
    if request.method == "POST" and (refused := _editable(request, version)):
        return refused
    if not version.phases.exists():
        messages.error(request, _("Add a phase first: every milestone belongs to one."))
        return redirect("onboarding:program-version", version.pk)
    initial: dict[str, Any] = {}
    if milestone is None:
        phase_id = request.GET.get("phase")
        if phase_id and phase_id.isdigit():
            initial["phase"] = int(phase_id)
        last = version.milestones.aggregate(last=Max("position"))["last"]
        initial["position"] = 0 if last is None else last + 1
    form = MilestoneForm(request.POST or None, instance=milestone, version=version, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, _("Milestone “%(name)s” saved.") % {"name": saved.name})
        if milestone is None:
            return redirect("onboarding:milestone-edit", version.pk, saved.pk)
        return redirect(
            reverse("onboarding:program-version", args=[version.pk]) + f"#milestone-{saved.pk}"
        )
    context = _settings(
        version=version,
        program=version.program,
        editable=version.status == VersionStatus.DRAFT,
        form=form,
        milestone=milestone,
        resources=list(milestone.resources.order_by("id")) if milestone else [],
        resource_form=ResourceForm(),
    )
    status = 400 if request.method == "POST" else 200
    return render(request, "onboarding/milestone_form.html", context, status=status)


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def milestone_delete(request: HttpRequest, pk: int, milestone_pk: int) -> HttpResponse:
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    milestone = get_object_or_404(version.milestones, pk=milestone_pk)
    milestone.delete()
    messages.success(request, _("Milestone “%(name)s” deleted.") % {"name": milestone.name})
    return redirect(reverse("onboarding:program-version", args=[version.pk]) + "#phases")


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def resource_add(request: HttpRequest, pk: int, milestone_pk: int) -> HttpResponse:
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    milestone = get_object_or_404(version.milestones, pk=milestone_pk)
    form = ResourceForm(request.POST)
    if form.is_valid():
        resource = form.save(commit=False)
        resource.milestone = milestone
        resource.save()
        return redirect(
            reverse("onboarding:milestone-edit", args=[version.pk, milestone.pk]) + "#resources"
        )
    context = _settings(
        version=version,
        program=version.program,
        editable=True,
        form=MilestoneForm(instance=milestone, version=version),
        milestone=milestone,
        resources=list(milestone.resources.order_by("id")),
        resource_form=form,
    )
    return render(request, "onboarding/milestone_form.html", context, status=400)


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def resource_delete(request: HttpRequest, pk: int, resource_pk: int) -> HttpResponse:
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    resource = get_object_or_404(Resource, pk=resource_pk, milestone__version=version)
    milestone_pk = resource.milestone_id
    resource.delete()
    return redirect(
        reverse("onboarding:milestone-edit", args=[version.pk, milestone_pk]) + "#resources"
    )


# Follow-ups


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def follow_up_add(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    form = FollowUpForm(request.POST)
    if not form.is_valid():
        return _version_page(request, version, follow_up_form=form, status=400)
    follow_up = form.save(commit=False)
    follow_up.version = version
    follow_up.save()
    return redirect(reverse("onboarding:program-version", args=[version.pk]) + "#follow-ups")


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def follow_up_delete(request: HttpRequest, pk: int, follow_up_pk: int) -> HttpResponse:
    version = _version(pk)
    if refused := _editable(request, version):
        return refused
    get_object_or_404(FollowUp, pk=follow_up_pk, version=version).delete()
    return redirect(reverse("onboarding:program-version", args=[version.pk]) + "#follow-ups")
