"""Tasks and playbooks pages: the task pages (``urls_tasks``) and the playbook pages
(``urls_playbooks``) under one namespace."""

from kizuna.playbooks.urls_playbooks import urlpatterns as playbook_patterns
from kizuna.playbooks.urls_tasks import urlpatterns as task_patterns

app_name = "playbooks"

urlpatterns = [*task_patterns, *playbook_patterns]
