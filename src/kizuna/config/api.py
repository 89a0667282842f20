"""The REST API under /api/v1: each bounded context contributes its router."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.security import SessionAuth

from kizuna.analytics.api import router as analytics_router
from kizuna.core.api import router as core_router
from kizuna.core.api_auth import ApiTokenAuth
from kizuna.customers.api import router as customers_router
from kizuna.customers.import_api import router as imports_router
from kizuna.health.api import router as health_router
from kizuna.lifecycle.api_owners import router as owners_router
from kizuna.lifecycle.api_policy import router as lifecycle_policy_router
from kizuna.lifecycle.api_segments import router as segments_router
from kizuna.onboarding.api import router as onboarding_router
from kizuna.playbooks.api_playbooks import router as playbooks_router
from kizuna.playbooks.api_tasks import router as tasks_router
from kizuna.reports.api import router as reports_router

api = NinjaAPI(
    title="Kizuna API",
    version="1",
    description="Customers, contacts, products, subscriptions, timeline, imports and KPIs.",
    auth=[ApiTokenAuth(), SessionAuth()],
    urls_namespace="api",
    docs_url="/docs",
)


@api.exception_handler(PermissionDenied)
def permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "forbidden"}, status=403)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    detail = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    return api.create_response(request, {"detail": detail}, status=400)


api.add_router("/", core_router)
api.add_router("/", customers_router)
api.add_router("/imports", imports_router)
api.add_router("/kpis", reports_router)
api.add_router("/", analytics_router)
api.add_router("/", owners_router)
api.add_router("/", segments_router)
api.add_router("/", lifecycle_policy_router)
api.add_router("/", onboarding_router)
api.add_router("/", health_router)
api.add_router("/", playbooks_router)
api.add_router("/", tasks_router)
