"""Routes of the tenant admin pages ("manage"), in their own namespace: manage:dashboard, manage:pools, ..."""

from __future__ import annotations

from django.urls import path

from desktops.manage import firewall, onboarding, scaling, sizes, views

app_name = "manage"
urlpatterns = [
    path("manage/", views.DashboardView.as_view(), name="dashboard"),
    path("manage/figures/", views.DashboardFiguresView.as_view(), name="figures"),
    path("manage/desktops/", views.DesktopsView.as_view(), name="desktops"),
    path("manage/desktops/bulk/", views.BulkActionView.as_view(), name="bulk"),
    path("manage/pools/", views.PoolsView.as_view(), name="pools"),
    path("manage/pools/<int:pk>/", views.PoolEditView.as_view(), name="pool"),
    path("manage/pools/<int:pk>/delete/", views.PoolDeleteView.as_view(), name="pool-delete"),
    path("manage/pools/<int:pk>/scaling/", scaling.PoolScalingView.as_view(), name="pool-scaling"),
    path(
        "manage/pools/<int:pk>/scaling/exceptions/",
        scaling.ScalingExceptionAddView.as_view(),
        name="scaling-exception-add",
    ),
    path(
        "manage/scaling-exceptions/<int:pk>/delete/",
        scaling.ScalingExceptionDeleteView.as_view(),
        name="scaling-exception-delete",
    ),
    path("manage/templates/", views.TemplatesView.as_view(), name="templates"),
    path("manage/templates/new/", views.TemplateEditView.as_view(), name="template-new"),
    path("manage/templates/<int:pk>/", views.TemplateEditView.as_view(), name="template"),
    path("manage/templates/<int:pk>/sizes/", sizes.TemplateSizesView.as_view(), name="template-sizes"),
    path("manage/sizes/<int:pk>/", sizes.TemplateSizeView.as_view(), name="template-size"),
    path("manage/sizes/<int:pk>/delete/", sizes.TemplateSizeDeleteView.as_view(), name="template-size-delete"),
    path("manage/new-members/", onboarding.NewMemberDesktopView.as_view(), name="new-members"),
    path("manage/network/", firewall.FirewallView.as_view(scope="tenant"), name="network"),
    path(
        "manage/templates/<int:pk>/firewall/",
        firewall.FirewallView.as_view(scope="template"),
        name="template-firewall",
    ),
    path("manage/desktops/<int:pk>/firewall/", firewall.FirewallView.as_view(scope="desktop"), name="desktop-firewall"),
]
