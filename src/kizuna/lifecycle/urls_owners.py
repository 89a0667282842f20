"""Routes of ownership: portfolio, team page, teams and rules, handoffs, the owners panel."""

from django.urls import URLPattern, path

from kizuna.lifecycle import views_owners as views

urlpatterns: list[URLPattern] = [
    path("portfolio/", views.my_portfolio, name="portfolio"),
    path("portfolio/<int:user_pk>/", views.user_portfolio, name="portfolio-user"),
    path("team/", views.team, name="team"),
    path("team/assign/", views.team_assign, name="team-assign"),
    path("team/reassign/", views.team_reassign, name="team-reassign"),
    path("settings/teams/", views.teams, name="teams"),
    path("settings/teams/<slug:kind>/add/", views.teams_edit, name="teams-add"),
    path("settings/teams/<slug:kind>/<int:pk>/", views.teams_edit, name="teams-edit"),
    path("settings/teams/<slug:kind>/<int:pk>/delete/", views.teams_delete, name="teams-delete"),
    path("handoffs/", views.handoff_list, name="handoffs"),
    path("handoffs/<int:pk>/", views.handoff_detail, name="handoff"),
    path("handoffs/<int:pk>/acknowledge/", views.handoff_acknowledge, name="handoff-acknowledge"),
    path("customers/<int:pk>/owners/", views.customer_owners, name="customer-owners"),
    path(
        "customers/<int:pk>/owners/change/",
        views.customer_owner_change,
        name="customer-owner-change",
    ),
    path("customers/<int:pk>/handoffs/add/", views.handoff_add, name="handoff-add"),
]
