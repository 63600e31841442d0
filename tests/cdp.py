"""A small Chrome DevTools Protocol client over a WebSocket, with the standard library only
(RFC 6455 framing: masked text frames out, continuation frames in). It starts a headless
Chromium, opens one page and sends commands; events are collected for the test to inspect.
Used by the report test to open the HTML page in a real browser."""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from urllib.parse import urlparse

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """``with Browser(profile_dir) as b:`` a headless browser with one page; ``b.call(method,
    **params)`` returns the result; ``b.events`` holds every event received."""

    def __init__(self, profile_dir, timeout: float = 60.0):
        self.timeout = timeout
        self.events: list[dict] = []
        self._next_id = 0
        self.process = subprocess.Popen(
            [find_browser(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
             f"--user-data-dir={profile_dir}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port(profile_dir)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank",
                                         method="PUT")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            target = json.load(response)
        self._connect(target["webSocketDebuggerUrl"])

    def _devtools_port(self, profile_dir) -> int:
        """The port the browser writes to DevToolsActivePort in its profile directory."""
        marker = os.path.join(profile_dir, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if os.path.exists(marker):
                with open(marker) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    return int(first)
            if self.process.poll() is not None:
                raise RuntimeError(f"browser exited: {self.process.stderr.read()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError("browser did not open its DevTools port")

    def _connect(self, url: str) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port),
                                             timeout=self.timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        header = b""
        while b"\r\n\r\n" not in header:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake closed")
            header += chunk
        if b" 101 " not in header.split(b"\r\n")[0]:
            raise ConnectionError(f"websocket handshake refused: {header[:200]!r}")

    def _send(self, text: str) -> None:
        payload = text.encode()
        head = bytes([0x81])  # FIN, text frame
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)  # a client masks every frame (RFC 6455 5.3)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("websocket closed")
            data += chunk
        return bytes(data)

    def _receive(self) -> dict:
        message = bytearray()
        while True:
            first, second = self._exact(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            mask = self._exact(4) if second & 0x80 else None
            payload = self._exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (0x9, 0xA):  # ping / pong: not used by DevTools
                continue
            message += payload
            if first & 0x80:
                return json.loads(message.decode())

    def call(self, method: str, **params):
        self._next_id += 1
        self._send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)
        raise TimeoutError(method)

    def wait_for(self, event: str) -> dict:
        for message in self.events:
            if message.get("method") == event:
                return message
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = self._receive()
            self.events.append(message)
            if message.get("method") == event:
                return message
        raise TimeoutError(event)

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
