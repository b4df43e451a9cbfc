"""Admin console routes, mounted in the portal namespace by desktops/urls.py (names start with admin-)."""

from __future__ import annotations

from django.urls import path

from desktops.admin_console import views

urlpatterns = [
    path("admin-console/", views.DashboardView.as_view(), name="admin-dashboard"),
    path("admin-console/figures/", views.DashboardFiguresView.as_view(), name="admin-figures"),
    path("admin-console/desktops/", views.DesktopsView.as_view(), name="admin-desktops"),
    path("admin-console/desktops/bulk/", views.BulkActionView.as_view(), name="admin-bulk"),
    path("admin-console/pools/", views.PoolsView.as_view(), name="admin-pools"),
    path("admin-console/pools/<int:pk>/", views.PoolEditView.as_view(), name="admin-pool"),
    path("admin-console/pools/<int:pk>/delete/", views.PoolDeleteView.as_view(), name="admin-pool-delete"),
    path("admin-console/templates/", views.TemplatesView.as_view(), name="admin-templates"),
    path("admin-console/templates/new/", views.TemplateEditView.as_view(), name="admin-template-new"),
    path("admin-console/templates/<int:pk>/", views.TemplateEditView.as_view(), name="admin-template"),
]
