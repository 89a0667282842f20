"""Customer pages."""

from django.urls import path

from kizuna.customers import import_views, views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list, name="list"),
    path("<int:pk>/", views.customer_detail, name="detail"),
    path("<int:pk>/edit/", views.customer_edit, name="edit"),
    path("<int:pk>/timeline/", views.customer_timeline, name="timeline"),
    path("<int:pk>/timeline/add/", views.add_timeline_entry, name="add-note"),
    path("<int:pk>/handoff/add/", views.add_handoff, name="handoff-add"),
    path("<int:pk>/contacts/add/", views.contact_form, name="contact-add"),
    path("<int:pk>/contacts/<int:contact_pk>/edit/", views.contact_form, name="contact-edit"),
    path("<int:pk>/subscriptions/add/", views.subscription_form, name="subscription-add"),
    path(
        "<int:pk>/subscriptions/<int:subscription_pk>/edit/",
        views.subscription_form,
        name="subscription-edit",
    ),
    path(
        "<int:pk>/subscriptions/<int:subscription_pk>/history/",
        views.subscription_history,
        name="subscription-history",
    ),
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/products/add/", views.product_form, name="product-add"),
    path("catalog/products/<int:product_pk>/edit/", views.product_form, name="product-edit"),
    path("catalog/plans/add/", views.plan_form, name="plan-add"),
    path("catalog/plans/<int:plan_pk>/edit/", views.plan_form, name="plan-edit"),
    path("import/", import_views.upload, name="import-upload"),
    path("import/<int:pk>/", import_views.preview, name="import-preview"),
    path("import/<int:pk>/report/", import_views.report, name="import-report"),
]
