"""Playbook pages: list, editor, simulation, runs, effect, library; Settings → Webhooks."""

from django.urls import URLPattern, path

from kizuna.playbooks import views_playbooks as views

urlpatterns: list[URLPattern] = [
    path("playbooks/", views.playbook_list, name="playbook-list"),
    path("playbooks/new/", views.playbook_form, name="playbook-create"),
    path("playbooks/condition/", views.condition_check, name="playbook-condition"),
    path("playbooks/library/", views.library_page, name="library"),
    path("playbooks/<int:pk>/", views.playbook_detail, name="playbook-detail"),
    path("playbooks/<int:pk>/edit/", views.playbook_form, name="playbook-edit"),
    path("playbooks/<int:pk>/state/", views.playbook_state, name="playbook-state"),
    path("playbooks/<int:pk>/simulate/", views.playbook_simulate, name="playbook-simulate"),
    path("playbooks/<int:pk>/runs/", views.playbook_runs, name="playbook-runs"),
    path("playbooks/<int:pk>/effect/", views.playbook_effect, name="playbook-effect"),
    path("playbooks/<int:pk>/delete/", views.playbook_delete, name="playbook-delete"),
    path("playbooks/executions/<int:pk>/retry/", views.execution_retry, name="execution-retry"),
    path("settings/webhooks/", views.webhook_list, name="webhooks"),
    path("settings/webhooks/add/", views.webhook_form, name="webhook-create"),
    path("settings/webhooks/<int:pk>/", views.webhook_form, name="webhook-edit"),
    path("settings/webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
    path("settings/webhooks/<int:pk>/test/", views.webhook_test, name="webhook-test"),
]
