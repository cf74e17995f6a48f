"""ASGI entry: HTTP through Django, websockets through Channels with origin and session checks."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boneage.settings")
django_asgi_app = get_asgi_application()

# Imported after get_asgi_application(): these need Django set up first.
from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from boneage.live.origin import SameOriginValidator
from boneage.live.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Host in ALLOWED_HOSTS (channels), then scheme + host + port (SameOriginValidator), then the session.
        "websocket": AllowedHostsOriginValidator(SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))),
    }
)
