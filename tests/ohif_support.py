"""A stock OHIF viewer for the browser tests: the built `dist/` that the `@ohif/app` package ships on the npm registry,
fetched with `npm pack` at test time into var/ohif/ (git-ignored; nothing of OHIF is in this repository) and served
unchanged from a loopback origin of its own, except `app-config.js`, OHIF's configuration file, which names the
platform's DICOMweb as its data source (the configuration docs/dicomweb.md gives integrators)."""
from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

OHIF_PACKAGE = "@ohif/app@3.13.2"
CACHE = Path(__file__).resolve().parents[1] / "var" / "ohif"


def ohif_dist() -> Path:
    """OHIF's built viewer (dist/), from the npm registry once per checkout; skips the test when it cannot be had."""
    version = OHIF_PACKAGE.rsplit("@", 1)[1]
    dist = CACHE / version / "package" / "dist"
    if (dist / "index.html").exists():
        return dist
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the stock OHIF build comes from the npm registry")
    download = CACHE / "download"
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    try:
        packed = subprocess.run([npm, "pack", OHIF_PACKAGE, "--pack-destination", str(download), "--json"],
                                capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"the npm registry did not deliver {OHIF_PACKAGE} within 10 minutes")
    if packed.returncode != 0:
        pytest.skip(f"the npm registry cannot be reached for {OHIF_PACKAGE}: {packed.stderr.strip()[-300:]}")
    tarball = download / json.loads(packed.stdout)[0]["filename"]
    unpacked = CACHE / f"{version}.partial"
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    if not (unpacked / "package" / "dist" / "index.html").exists():
        pytest.fail(f"{OHIF_PACKAGE} no longer ships a built dist/ (no dist/index.html in its tarball)")
    shutil.rmtree(CACHE / version, ignore_errors=True)
    unpacked.rename(CACHE / version)
    shutil.rmtree(download, ignore_errors=True)
    return dist


def app_config(dicomweb_root: str) -> str:
    """OHIF's app-config.js with the platform's project as its only data source (docs/dicomweb.md, OHIF)."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "boneage",
        "configuration": {
            "friendlyName": "Bone age platform", "name": "boneage",
            "qidoRoot": dicomweb_root, "wadoRoot": dicomweb_root, "wadoUriRoot": dicomweb_root,
            "qidoSupportsIncludeField": True, "supportsFuzzyMatching": False, "supportsWildcard": True,
            "imageRendering": "wadors", "thumbnailRendering": "wadors", "enableStudyLazyLoad": True,
            "supportsStow": True, "staticWado": False, "singlepart": False, "bulkDataURI": {"enabled": True},
        },
    }
    config = {
        "routerBasename": "/", "extensions": [], "modes": [], "customizationService": {}, "showStudyList": True,
        "maxNumberOfWebWorkers": 2, "showWarningMessageForCrossOrigin": False, "showCPUFallbackMessage": False,
        "showLoadingIndicator": True, "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"}, "defaultDataSourceName": "boneage", "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


class OhifHandler(SimpleHTTPRequestHandler):
    """dist/ as a static site: app-config.js from the test, index.html for the single-page app's own routes."""

    config_js = b""
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".wasm": "application/wasm",
                      ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml"}

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/app-config.js":
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(self.config_js)))
            self.end_headers()
            self.wfile.write(self.config_js)
            return
        if path != "/" and not (Path(self.directory) / path.lstrip("/")).is_file():
            self.path = "/index.html"  # a route of the app (/viewer, /segmentation …)
        super().do_GET()


def serve_ohif(dist: Path, dicomweb_root: str) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Handler", (OhifHandler,), {"config_js": app_config(dicomweb_root).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(dist)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
