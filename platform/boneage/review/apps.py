from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "boneage.review"
    label = "review"
