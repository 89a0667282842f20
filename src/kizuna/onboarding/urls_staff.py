"""Staff pages of onboarding (namespace ``onboarding``, under /onboarding/): the board, plans,
the Customer 360 panel and Settings → Onboarding programs."""

from django.urls import path

from kizuna.onboarding import views, views_programs, views_settings

urlpatterns = [
    # The board and bulk actions
    path("", views.board, name="board"),
    path("bulk/", views.board_bulk, name="board-bulk"),
    # A plan
    path("plans/<int:pk>/", views.plan_detail, name="plan"),
    path("plans/<int:pk>/gantt/", views.plan_gantt, name="plan-gantt"),
    path(
        "plans/<int:pk>/milestones/<int:milestone_pk>/status/",
        views.milestone_status,
        name="milestone-status",
    ),
    path("plans/<int:pk>/tasks/<int:task_pk>/done/", views.task_done, name="task-done"),
    path("plans/<int:pk>/goals/", views.goal_add, name="goal-add"),
    path("plans/<int:pk>/goals/<int:goal_pk>/tick/", views.goal_tick, name="goal-tick"),
    path("plans/<int:pk>/kickoff/", views.kickoff, name="kickoff"),
    path("plans/<int:pk>/cancel/", views.plan_cancel, name="plan-cancel"),
    # Customer 360
    path("customers/<int:pk>/", views.customer_onboarding, name="customer-onboarding"),
    path("customers/<int:pk>/plans/", views.plan_create, name="plan-create"),
    # Settings → Onboarding calendar
    path("settings/", views_settings.onboarding_settings, name="settings"),
    path(
        "settings/holidays/<int:pk>/delete/", views_settings.holiday_delete, name="holiday-delete"
    ),
    # Settings → Onboarding programs
    path("programs/", views_programs.program_list, name="programs"),
    path("programs/new/", views_programs.program_create, name="program-create"),
    path("programs/<int:pk>/", views_programs.program_detail, name="program"),
    path("programs/<int:pk>/versions/", views_programs.version_new, name="version-new"),
    path("versions/<int:pk>/", views_programs.version_detail, name="program-version"),
    path("versions/<int:pk>/settings/", views_programs.version_settings, name="version-settings"),
    path("versions/<int:pk>/publish/", views_programs.version_publish, name="version-publish"),
    path("versions/<int:pk>/phases/", views_programs.phase_add, name="phase-add"),
    path("versions/<int:pk>/phases/<int:phase_pk>/", views_programs.phase_edit, name="phase-edit"),
    path("versions/<int:pk>/milestones/new/", views_programs.milestone_form, name="milestone-add"),
    path(
        "versions/<int:pk>/milestones/<int:milestone_pk>/",
        views_programs.milestone_form,
        name="milestone-edit",
    ),
    path(
        "versions/<int:pk>/milestones/<int:milestone_pk>/delete/",
        views_programs.milestone_delete,
        name="milestone-delete",
    ),
    path(
        "versions/<int:pk>/milestones/<int:milestone_pk>/resources/",
        views_programs.resource_add,
        name="resource-add",
    ),
    path(
        "versions/<int:pk>/resources/<int:resource_pk>/delete/",
        views_programs.resource_delete,
        name="resource-delete",
    ),
    path("versions/<int:pk>/follow-ups/", views_programs.follow_up_add, name="follow-up-add"),
    path(
        "versions/<int:pk>/follow-ups/<int:follow_up_pk>/delete/",
        views_programs.follow_up_delete,
        name="follow-up-delete",
    ),
]
