"""Task pages: My day, the team view, task detail and edits, the Customer 360 tasks panel."""

from django.urls import URLPattern, path

from kizuna.playbooks import views_tasks as views

urlpatterns: list[URLPattern] = [
    path("", views.my_day, name="my-day"),
    path("team/", views.team, name="team"),
    path("new/", views.task_new, name="task-new"),
    path("<int:pk>/", views.task_detail, name="task"),
    path("<int:pk>/edit/", views.task_edit, name="task-edit"),
    path("<int:pk>/complete/", views.task_complete, name="task-complete"),
    path("<int:pk>/start/", views.task_start, name="task-start"),
    path("<int:pk>/reopen/", views.task_reopen, name="task-reopen"),
    path("<int:pk>/cancel/", views.task_cancel, name="task-cancel"),
    path("<int:pk>/snooze/", views.task_snooze, name="task-snooze"),
    path("<int:pk>/reassign/", views.task_reassign, name="task-reassign"),
    path("<int:pk>/checklist/<int:index>/", views.checklist_toggle, name="task-checklist"),
    path("customers/<int:pk>/", views.customer_tasks, name="customer-tasks"),
]
