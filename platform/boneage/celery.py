"""The Celery app: queues `cpu` and `gpu` on Redis (docs/architecture.md, Workers and queues)."""
import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boneage.settings")

app = Celery("boneage")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue on its own exchange and key: a bare Queue("gpu") would share the default exchange and
# routing key with "cpu", and Redis would deliver a gpu task to both queues.
app.conf.task_queues = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("cpu", "gpu"))
app.autodiscover_tasks()
