"""The customer's plan page (public: a signed link is the only credential) and the staff routes
that create, show and revoke those links. Names land in the ``onboarding`` namespace."""

from django.urls import URLPattern, path

from kizuna.onboarding import views_public

urlpatterns: list[URLPattern] = [
    path("p/<str:token>/", views_public.public_plan, name="public-plan"),
    path(
        "p/<str:token>/milestones/<int:pk>/done/",
        views_public.public_milestone_done,
        name="public-milestone-done",
    ),
    path("plans/<int:pk>/links/", views_public.plan_links, name="plan-links"),
    path("plans/<int:pk>/links/new/", views_public.plan_link_create, name="plan-link-create"),
    path("links/<int:pk>/url/", views_public.plan_link_url, name="plan-link-url"),
    path("links/<int:pk>/revoke/", views_public.plan_link_revoke, name="plan-link-revoke"),
]
