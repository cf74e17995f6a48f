"""GET /healthz (readiness: database, Redis, storage), GET /livez (the process answers), GET /metrics."""
from __future__ import annotations

from dataclasses import asdict

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from boneage.ops.health import run_checks
from boneage.ops.metrics import render


@require_GET
def healthz(request):
    results = run_checks()
    failing = [name for name, result in results.items() if not result.ok]
    body = {"status": "unavailable" if failing else "ok", "failing": failing,
            "checks": {name: asdict(result) for name, result in results.items()}}
    return JsonResponse(body, status=503 if failing else 200)


@require_GET
def livez(request):
    return JsonResponse({"status": "ok"})


@require_GET
def metrics(request):
    if not settings.METRICS_ENABLED:
        return JsonResponse({"error": "not_found", "detail": "Metrics are off (METRICS_ENABLED)."}, status=404)
    return HttpResponse(render(), content_type="text/plain; version=0.0.4; charset=utf-8")
