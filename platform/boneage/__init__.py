"""The bone age platform's Django project."""
from boneage.celery import app as celery_app

__all__ = ["celery_app"]
