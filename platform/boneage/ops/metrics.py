"""Prometheus metrics (behind METRICS_ENABLED): requests per web process, task durations shared through
Redis (the worker records them, any web process serves them), queue depths and row counts read at scrape."""
from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
TASK_KEY = "boneage:metrics:task:{name}"
WORKERS_KEY = "boneage:workers"
QUEUES = ("cpu", "gpu")

REGISTRY = CollectorRegistry()
REQUESTS = Counter("boneage_http_requests", "HTTP requests served by this process",
                   ("method", "route", "status"), registry=REGISTRY)
REQUEST_SECONDS = Histogram("boneage_http_request_duration_seconds", "HTTP request latency in this process",
                            ("method", "route"), registry=REGISTRY)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def record_task(name: str, state: str, seconds: float) -> None:
    """Called by the worker after each task: one histogram per task name, cumulative buckets in a Redis hash."""
    fields = {"count": 1, f"state:{state}": 1, **{f"le:{b}": 1 for b in TASK_BUCKETS if seconds <= b}}
    with _redis() as client:
        pipe = client.pipeline(transaction=False)
        key = TASK_KEY.format(name=name)
        for field, amount in fields.items():
            pipe.hincrby(key, field, amount)
        pipe.hincrbyfloat(key, "sum", seconds)
        pipe.execute()


class SharedCollector(Collector):
    """What no single web process knows: task histograms, queue depths, workers and database counts."""

    def describe(self) -> list:
        return []  # names are only known at scrape time; describing must not touch the database at import

    def collect(self) -> Iterator:
        yield from self._from_redis()
        yield from self._from_database()

    def _from_redis(self) -> Iterator:
        tasks = HistogramMetricFamily("boneage_task_duration_seconds", "Celery task run time", labels=("task",))
        outcomes = GaugeMetricFamily("boneage_tasks", "Celery tasks run, by final state", labels=("task", "state"))
        depth = GaugeMetricFamily("boneage_queue_depth", "Tasks waiting in each Celery queue", labels=("queue",))
        workers = GaugeMetricFamily("boneage_worker_info", "Workers and the device each runs on",
                                    labels=("worker", "device"))
        try:
            with _redis() as client:
                for key in client.scan_iter(TASK_KEY.format(name="*")):
                    name = key.decode().rsplit(":", 1)[-1]
                    raw = {k.decode(): float(v) for k, v in client.hgetall(key).items()}
                    buckets = [(str(b), raw.get(f"le:{b}", 0.0)) for b in TASK_BUCKETS]
                    tasks.add_metric([name], [*buckets, ("+Inf", raw.get("count", 0.0))], raw.get("sum", 0.0))
                    for field, value in raw.items():
                        if field.startswith("state:"):
                            outcomes.add_metric([name, field[6:]], value)
                for queue in QUEUES:
                    depth.add_metric([queue], client.llen(queue))
                for worker, device in client.hgetall(WORKERS_KEY).items():
                    workers.add_metric([worker.decode(), device.decode()], 1)
        except redis.RedisError:
            return  # /healthz reports Redis; metrics just leave these families out
        yield from (tasks, outcomes, depth, workers)

    def _from_database(self) -> Iterator:
        from django.db.models import Count

        from boneage.modeling.models import Prediction, TrainingRun
        from boneage.studies.models import Study

        yield GaugeMetricFamily("boneage_studies", "Studies stored", value=Study.objects.count())
        yield GaugeMetricFamily("boneage_predictions", "Predictions stored", value=Prediction.objects.count())
        runs = GaugeMetricFamily("boneage_training_runs", "Training runs by state", labels=("state",))
        for row in TrainingRun.objects.values("state").annotate(n=Count("id")):
            runs.add_metric([row["state"]], row["n"])
        yield runs


REGISTRY.register(SharedCollector())


def render() -> bytes:
    return generate_latest(REGISTRY)


class RequestMetricsMiddleware:
    """Counts and times every request by its URL pattern's name (bounded labels, never the raw path)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.url_name or match.route) if match else "unmatched"
        REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response
