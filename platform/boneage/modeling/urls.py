"""URLs of the modeling app: `api` is mounted under /api/, `pages` at the site root."""
from django.urls import path  # noqa: F401

api: list = []
pages: list = []
