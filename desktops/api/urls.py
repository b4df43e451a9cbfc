"""API routes of the desktops app."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from desktops.api import automation, disposable, files, firewall, scaling, views

router = SimpleRouter()
router.register("templates", views.TemplateViewSet, basename="template")
router.register("desktops", views.DesktopViewSet, basename="desktop")
# Detail actions only (screenshot, input, screen/changes) on the same desktops/{id}/ prefix.
router.register("desktops", automation.DesktopAutomationViewSet, basename="desktop-automation")
router.register("operations", views.OperationViewSet, basename="operation")
router.register("pools", views.PoolViewSet, basename="pool")
router.register("firewall-rules", firewall.FirewallRuleViewSet, basename="firewall-rule")
router.register("files", files.FilesViewSet, basename="files")
router.register("scaling-exceptions", scaling.ScalingExceptionViewSet, basename="scaling-exception")
disposables = disposable.DisposableDesktopViewSet.as_view({"get": "list", "post": "create", "delete": "tear_down"})
automation_tokens = automation.AutomationTokenViewSet.as_view({"post": "create"})
policy = firewall.NetworkPolicyViewSet.as_view({"get": "retrieve", "put": "update"})
pool_scaling = scaling.PoolScalingViewSet.as_view({"get": "retrieve", "put": "update", "patch": "update"})
pool_forecast = scaling.PoolScalingViewSet.as_view({"get": "forecast"})
urlpatterns = [
    *router.urls,
    path("network-policy/", policy, name="network-policy"),
    path("automation-tokens/", automation_tokens, name="automation-token-list"),
    path("disposable-desktops/", disposables, name="disposable-desktop-list"),
    path("pools/<int:pk>/scaling/", pool_scaling, name="pool-scaling"),
    path("pools/<int:pk>/forecast/", pool_forecast, name="pool-forecast"),
]

# The original plan's three calls, for scripts (mounted at /api/desktop/).
plan_urlpatterns = [
    path("start", views.PlanViewSet.as_view({"post": "start"}), name="desktop-plan-start"),
    path("status", views.PlanViewSet.as_view({"get": "status"}), name="desktop-plan-status"),
    path("stop", views.PlanViewSet.as_view({"post": "stop"}), name="desktop-plan-stop"),
]
