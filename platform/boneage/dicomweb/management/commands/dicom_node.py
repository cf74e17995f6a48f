"""`python manage.py dicom_node [--port N]`: the DICOM node (Storage SCP: C-ECHO, C-STORE), routed by called AE title
to projects (dicomweb.node); runs until stopped (SIGTERM or Ctrl-C)."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from boneage.dicomweb.node import serve
from boneage.studies.models import Project


class Command(BaseCommand):
    help = "Serve the DICOM node (C-ECHO, C-STORE); the called AE title names the project."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT, help="TCP port (default DICOM_PORT, 11112)")
        parser.add_argument("--bind", default=settings.DICOM_BIND, help="address to listen on (default DICOM_BIND)")

    def handle(self, *args, port: int, bind: str, **options) -> None:
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port} is not a TCP port (1–65535).")
        titles = ", ".join(f"{title} → {name}" for title, name in
                           Project.objects.order_by("ae_title").values_list("ae_title", "name")) or "none yet"
        try:
            server = serve(bind, port, block=False)
        except OSError as exc:
            raise CommandError(f"The DICOM node cannot listen on {bind}:{port}: {exc}") from exc
        self.stdout.write(f"DICOM node listening on {bind}:{port}; called AE titles: {titles}", ending="\n")
        self.stdout.flush()
        try:
            import signal
            import threading

            stopped = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stopped.set())
            stopped.wait()
        except KeyboardInterrupt:
            pass
        finally:
            assert server is not None
            server.shutdown()
