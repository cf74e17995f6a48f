"""A small blocking websocket client (RFC 6455) for tests against the real Daphne: text frames, answers the
server's pings (Daphne pings every 20 s and closes a socket that does not answer), reports the close code."""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from urllib.parse import urlparse


class SocketClosed(Exception):
    def __init__(self, code: int | None):
        super().__init__(f"the server closed the socket (code {code})")
        self.code = code


class WebsocketClient:
    def __init__(self, url: str, *, origin: str, cookie: str | None = None, timeout: float = 10.0):
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        host = f"{parsed.hostname}:{parsed.port}" if parsed.port else parsed.hostname
        lines = [f"GET {parsed.path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"Origin: {origin}"]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise SocketClosed(None)
            response += chunk
        head, self._buffer = response.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])
        if self.status != 101:
            raise SocketClosed(self.status)

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SocketClosed(None)
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        header = bytes([0x80 | opcode])
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send_json(self, data) -> None:
        self._send_frame(0x1, json.dumps(data).encode())

    def receive_json(self, timeout: float = 10.0):
        """The next text message; pings are answered on the way. SocketClosed (with the code) when it closes."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message within {timeout:.0f} s")
            self.sock.settimeout(remaining)
            first, second = self._read(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(length)
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                raise SocketClosed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)
            elif opcode == 0x1:
                return json.loads(payload)

    def close(self) -> None:
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()
