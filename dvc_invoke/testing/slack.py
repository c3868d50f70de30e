"""A stand-in Slack on 127.0.0.1: the Web API methods and an incoming webhook, over HTTP.

It answers as Slack does (JSON ``{"ok": ...}`` from the Web API, ``ok`` text
from a webhook), checks the bearer token and the channel, records every
request, and plays scripted faults: a status, a body, headers, a delay::

    slack.fail("chat.postMessage", status=500)                      # a 5xx
    slack.fail("chat.postMessage", status=429, headers={"Retry-After": "1"})
    slack.fail("chat.postMessage", body={"ok": False, "error": "invalid_auth"})
    slack.fail("webhook", delay=30)                                 # a hang

Files go up as with Slack's ``files_upload_v2``: ``files.getUploadURLExternal``
hands out an upload URL here, the bytes are posted to it, and
``files.completeUploadExternal`` shares them in a channel (or a thread);
``slack.files`` holds what was shared.

Point a run at it with ``env=slack.web_api_env()`` or ``slack.webhook_env()``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

TOKEN = "xoxb-1111-2222-standinsecret"
WEBHOOK_PATH = "/services/T0STANDIN/B0STANDIN/standinwebhooksecret"


@dataclass
class Request:
    method: str  # the API method ("chat.postMessage"), or "webhook"
    headers: dict[str, str]
    body: dict[str, Any]
    faulted: bool = False  # answered with a scripted fault, not as Slack would

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))

    @property
    def blocks_text(self) -> str:
        return json.dumps(self.body.get("blocks", []), ensure_ascii=False)


@dataclass
class File:
    id: str
    filename: str
    length: int
    data: bytes | None = None  # posted to its upload URL
    title: str | None = None
    channel: str | None = None  # where it was shared (completeUploadExternal)
    thread_ts: str | None = None
    comment: str | None = None


@dataclass
class Fault:
    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class SlackServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.channels = {"#ml-runs": "C0RUNS", "#metrics": "C0METRICS"}
        self.members = {"C0RUNS", "C0METRICS"}
        self._ts = 0
        self.uploads: dict[str, File] = {}  # by file id, shared or not
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                if self.path.startswith("/upload/"):
                    server._upload(self, data)
                    return
                raw = data.decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = dict(parse_qsl(raw))
                server._handle(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- set-up --------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def web_api_env(self, channel: str = "#ml-runs") -> dict[str, str]:
        return {"SLACK_API_URL": self.api_url, "SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": channel}

    def webhook_env(self) -> dict[str, str]:
        return {"SLACK_WEBHOOK_URL": self.webhook_url}

    def fail(self, method: str, times: int = 1, **fault: Any) -> None:
        """The next ``times`` calls of ``method`` get ``fault`` instead of an answer."""
        self.faults[method] += [Fault(**fault) for _ in range(times)]

    @property
    def files(self) -> list[File]:
        """The files shared in a channel, in the order they were."""
        return [f for f in self.uploads.values() if f.channel]

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    # -- answering -----------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        path = h.path.split("?")[0]
        method = "webhook" if path == WEBHOOK_PATH else path.removeprefix("/api/")
        with self._lock:
            fault = self.faults[method].pop(0) if self.faults[method] else None
            self.requests.append(Request(method, dict(h.headers), body, fault is not None))
        if fault is not None:
            time.sleep(fault.delay)
            if fault.body is not None or fault.status != 200:
                self._reply(h, fault.status, fault.body, fault.headers)
                return
        invalid = self._invalid(body)
        if method == "webhook":
            self._reply(h, 400 if invalid else 200, invalid or "ok")
            return
        if path.startswith("/services/"):
            self._reply(h, 404, "no_service")
            return
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(h, 200, {"ok": False, "error": "invalid_auth"})
            return
        answer = getattr(self, "_" + method.replace(".", "_"), None)
        if answer is None:
            self._reply(h, 200, {"ok": False, "error": "unknown_method"})
            return
        if invalid:
            self._reply(h, 200, {"ok": False, "error": invalid})
            return
        self._reply(h, 200, answer(body))
        return

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        """Slack's word for a message it will not take, checked as Slack checks it."""
        blocks = body.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if len(body.get("text") or "") > 40000:
            return "msg_too_long"
        if len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            texts = [block.get("text") or {}] + list(block.get("fields") or [])
            limits = [3000] + [2000] * len(block.get("fields") or [])
            if len(block.get("fields") or []) > 10:
                return "invalid_blocks"
            for text, limit in zip(texts, limits, strict=True):
                if len(text.get("text") or "") > limit:
                    return "invalid_blocks"
        return None

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user": "dvc-bot", "team": "ML team", "user_id": "U0BOT"}

    def _channel(self, body: dict[str, Any]) -> str | None:
        name = body.get("channel", "")
        return self.channels.get(name, name if name in self.channels.values() else None)

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        channel = self._channel(body)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if channel not in self.members:
            return {"ok": False, "error": "not_in_channel"}
        with self._lock:
            self._ts += 1
            ts = f"1700000000.{self._ts:06d}"
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text")}}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("channel") not in self.channels.values():
            return {"ok": False, "error": "channel_not_found"}  # a name is not an id
        return {"ok": True, "channel": body["channel"], "ts": body.get("ts")}

    def _files_getUploadURLExternal(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        try:
            length = int(body.get("length") or "")
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not body.get("filename"):
            return {"ok": False, "error": "invalid_arguments"}
        with self._lock:
            file_id = f"F0{len(self.uploads) + 1:06d}"
            self.uploads[file_id] = File(file_id, body["filename"], length)
        return {
            "ok": True,
            "file_id": file_id,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/v1/{file_id}",
        }

    def _upload(self, h: BaseHTTPRequestHandler, data: bytes) -> None:
        file_id = h.path.split("?")[0].rsplit("/", 1)[-1]
        with self._lock:
            self.requests.append(Request("upload", dict(h.headers), {"file_id": file_id}))
            file = self.uploads.get(file_id)
            if file is None or file.data is not None or len(data) != file.length:
                status = 404 if file is None else 400
            else:
                file.data, status = data, 200
        self._reply(h, status, "OK - " + str(len(data)) if status == 200 else "bad upload")

    def _files_completeUploadExternal(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        try:
            listed = json.loads(body.get("files") or "")
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        channel = body.get("channel_id")
        if channel is not None and channel not in self.channels.values():
            return {"ok": False, "error": "channel_not_found"}  # an id, not a name
        shared = []
        with self._lock:
            for entry in listed:
                file = self.uploads.get(entry.get("id"))
                if file is None or file.data is None:
                    return {"ok": False, "error": "file_not_found"}
                file.title, file.channel = entry.get("title"), channel
                file.thread_ts, file.comment = body.get("thread_ts"), body.get("initial_comment")
                shared.append({"id": file.id, "name": file.filename, "title": file.title})
        return {"ok": True, "files": shared}

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        h.send_response(status)
        ctype = "text/plain" if isinstance(body, str) else "application/json"
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def __enter__(self) -> SlackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
