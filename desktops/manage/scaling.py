"""The pool's scaling page: its plan, calendar exceptions, today's planned warm desktops and last week's demand."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views import View

from desktops.manage.forms import ScalingExceptionForm, ScalingPlanForm
from desktops.manage.views import AdminPage
from desktops.models import Pool, ScalingException, ScalingPlan
from desktops.services import autoscale, forecast, scaling
from quetzal.errors import FieldErrors, ServiceError

# The charts' drawing box; the SVG stretches to the page's width (a phone's too), so only ratios matter.
CHART_WIDTH, CHART_HEIGHT = 960, 160
PHASE_COLOURS = {
    scaling.RAMP_UP: "#9ec5fe",
    scaling.PEAK: "#3f6ad8",
    scaling.RAMP_DOWN: "#9ec5fe",
    scaling.OFF_PEAK: "#d8dde6",
}


def _add_errors(form, error: ServiceError) -> None:
    """A service's field errors on the form's fields (and the rest above the form)."""
    errors = error.errors if isinstance(error, FieldErrors) else {}
    for name, message in errors.items():
        form.add_error(name if name in form.fields else None, message)
    if not errors:
        form.add_error(None, error.detail)


def bar_title(p: forecast.DayPoint) -> str:
    """A bar's tooltip: its time, phase, warm target, plan and (when prediction is on) the prediction."""
    values = {"at": f"{p.at:%H:%M}", "phase": scaling.PHASE_LABELS[p.phase], "target": p.target, "plan": p.planned}
    if p.predicted is None:
        return gettext("%(at)s %(phase)s: %(target)s warm (plan %(plan)s)") % values
    return gettext("%(at)s %(phase)s: %(target)s warm (plan %(plan)s, predicted %(predicted)s)") % {
        **values,
        "predicted": p.predicted,
    }


def day_chart(points: list[forecast.DayPoint], top: int) -> dict:
    """Bars per quarter hour (the target, coloured by phase) and the plan's minimum as a line."""
    step = CHART_WIDTH / max(1, len(points))
    scale = CHART_HEIGHT / max(1, top)
    bars = [
        {
            "x": round(i * step, 2),
            "y": round(CHART_HEIGHT - p.target * scale, 2),
            "h": round(p.target * scale, 2),
            "w": round(step, 2),
            "colour": PHASE_COLOURS[p.phase],
            "title": bar_title(p),
        }
        for i, p in enumerate(points)
    ]
    planned = scaling.chart_points(
        [(p.at, p.planned) for p in points], width=CHART_WIDTH, height=CHART_HEIGHT, top=max(1, top)
    )
    return {"bars": bars, "planned": planned, "top": top, "hours": ["00", "06", "12", "18", "24"]}


def week_chart(points: list[forecast.HourPoint]) -> dict:
    """Actual claims per hour as bars, the prediction as a line, a tick per day."""
    top = max([1, *(p.actual for p in points), *(p.predicted for p in points)])
    actual = forecast.chart_svg_bars([p.actual for p in points], width=CHART_WIDTH, height=CHART_HEIGHT, top=top)
    step = CHART_WIDTH / max(1, len(points))
    line = " ".join(
        f"{(i + 0.5) * step:.1f},{CHART_HEIGHT - p.predicted * CHART_HEIGHT / top:.1f}" for i, p in enumerate(points)
    )
    days = [f"{p.start:%a %d}" for p in points[::24]]
    return {
        "bars": [{"x": x, "y": y, "h": h, "w": round(step, 2)} for x, y, h in actual],
        "predicted": line,
        "top": round(top, 1),
        "days": days,
        "actual_total": sum(p.actual for p in points),
        "predicted_total": round(sum(p.predicted for p in points), 1),
    }


class PoolScalingView(AdminPage, View):
    """The plan's form, the calendar, and the two charts."""

    template_name = "desktops/manage/pool_scaling.html"

    def pool(self, pk: int) -> Pool:
        return get_object_or_404(self.scoped(Pool.objects.select_related("template", "tenant")), pk=pk)

    def context(self, pool: Pool, form: ScalingPlanForm, exception_form: ScalingExceptionForm) -> dict:
        row = form.instance if form.instance.pk else ScalingPlan(pool=pool, tenant_id=pool.tenant_id)
        day = scaling.local_moment(timezone.now(), pool.tenant.time_zone).date()
        points = forecast.day_chart(pool, row, day)
        target = autoscale.warm_target(pool)
        return {
            "pool": pool,
            "form": form,
            "exception_form": exception_form,
            "exceptions": ScalingException.objects.filter(pool=pool),
            "plan_saved": bool(form.instance.pk),
            "day": day,
            "target": target,
            "quota_ceiling": autoscale.quota_ceiling(pool),
            "day_chart": day_chart(points, top=max([1, pool.max_size, *(p.planned for p in points)])),
            "week_chart": week_chart(forecast.last_week(pool, row)) if row.prediction_enabled else None,
            "phase_rows": [
                (label, form[f"{phase}_start"], form[f"{phase}_minimum"], form[f"{phase}_unit"])
                for phase, label in scaling.PHASE_LABELS.items()
            ],
            "target_phase": scaling.PHASE_LABELS.get(target.phase or "", ""),
            "legend": [(scaling.PHASE_LABELS[phase], PHASE_COLOURS[phase]) for phase in scaling.PHASES],
        }

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        pool = self.pool(pk)
        row = autoscale.plan_row(pool) or ScalingPlan(pool=pool, tenant_id=pool.tenant_id)
        form = ScalingPlanForm(instance=row)
        return render(request, self.template_name, self.context(pool, form, ScalingExceptionForm()))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        pool = self.pool(pk)
        row = autoscale.plan_row(pool) or ScalingPlan(pool=pool, tenant_id=pool.tenant_id)
        form = ScalingPlanForm(request.POST, instance=row)
        if form.is_valid():
            values = {key: form.cleaned_data[key] for key in autoscale.PLAN_FIELDS}
            try:
                autoscale.save_plan(pool=pool, actor=request.user, values=values)
            except ServiceError as error:
                _add_errors(form, error)
            else:
                messages.success(
                    request, gettext("Scaling plan of %(name)s saved; refill follows it now.") % {"name": pool.name}
                )
                return redirect("manage:pool-scaling", pk=pool.pk)
        # The instance the form validated into is not saved: show the stored plan's charts.
        form.instance = autoscale.plan_row(pool) or ScalingPlan(pool=pool, tenant_id=pool.tenant_id)
        return render(request, self.template_name, self.context(pool, form, ScalingExceptionForm()), status=400)


class ScalingExceptionAddView(PoolScalingView):
    """Add a closure or a weekly slot to the pool's calendar."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return redirect("manage:pool-scaling", pk=pk)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        pool = self.pool(pk)
        exception_form = ScalingExceptionForm(request.POST)
        if exception_form.is_valid():
            values = {key: exception_form.cleaned_data[key] for key in autoscale.EXCEPTION_FIELDS}
            try:
                autoscale.add_exception(pool=pool, actor=request.user, values=values)
            except ServiceError as error:
                _add_errors(exception_form, error)
            else:
                messages.success(request, gettext("Calendar exception added."))
                return redirect("manage:pool-scaling", pk=pool.pk)
        row = autoscale.plan_row(pool) or ScalingPlan(pool=pool, tenant_id=pool.tenant_id)
        form = ScalingPlanForm(instance=row)
        return render(request, self.template_name, self.context(pool, form, exception_form), status=400)


class ScalingExceptionDeleteView(AdminPage, View):
    """Remove one calendar exception."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        exception = get_object_or_404(self.scoped(ScalingException.objects.select_related("pool")), pk=pk)
        pool_pk = exception.pool_id
        autoscale.delete_exception(exception=exception, actor=request.user)
        messages.success(request, gettext("Calendar exception removed."))
        return redirect("manage:pool-scaling", pk=pool_pk)
