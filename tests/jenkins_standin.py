"""A small HTTP server that stands in for Jenkins in tests: Jenkins itself cannot be downloaded
on these machines. It records every request and answers the few REST endpoints mlci uses.

Endpoints (as Jenkins 2.x answers them): /api/json, /crumbIssuer/api/json (404: CSRF off),
/createItem, /job/<n>/config.xml, /job/<n>/api/json, /job/<n>/buildWithParameters, /job/<n>/build,
/job/<n>/<b>/api/json, /createView, /view/<n>/config.xml, /view/<n>/api/json, /git/notifyCommit.
"""
from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def user(self) -> str | None:
        """The Basic-auth user:token, decoded (None when anonymous)."""
        auth = self.headers.get("authorization", "")
        return base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else None


@dataclass
class StandInJenkins:
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    jobs: dict[str, bytes] = field(default_factory=dict)
    views: dict[str, bytes] = field(default_factory=dict)
    builds: dict[str, list[dict]] = field(default_factory=dict)
    queue: list[tuple[str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, method: str | None = None, prefix: str = "") -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(prefix)]


def _handler(state: StandInJenkins):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _reply(self, code: int, body: bytes | dict | str = b"", headers: dict[str, str] | None = None):
            if isinstance(body, dict):
                body, kind = json.dumps(body).encode(), "application/json"
            elif isinstance(body, str):
                body, kind = body.encode(), "text/plain"
            else:
                kind = "application/xml"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Jenkins", "2.462.3")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> Request:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, unquote(parts.path), parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            with state.lock:
                state.requests.append(request)
            return request

        def do_GET(self):
            request = self._record()
            segments = [s for s in request.path.split("/") if s]
            with state.lock:
                if segments in (["api", "json"], []):
                    return self._reply(200, {"jobs": [{"name": n, "url": f"{state.url}job/{n}/", "color": "blue"}
                                                      for n in state.jobs],
                                             "views": [{"name": n, "url": f"{state.url}view/{n}/"} for n in state.views]})
                if segments[:1] == ["git"] and segments[1:] == ["notifyCommit"]:
                    url = request.query.get("url", [""])[0]
                    hit = [n for n, xml in state.jobs.items() if url and url.encode() in xml]
                    return self._reply(200, f"Scheduled polling of {', '.join(hit) or 'no job'}\n")
                if len(segments) >= 2 and segments[0] == "job" and segments[1] in state.jobs:
                    name = segments[1]
                    rest = segments[2:]
                    builds = state.builds.get(name, [])
                    if rest == ["config.xml"]:
                        return self._reply(200, state.jobs[name])
                    if rest == ["api", "json"]:
                        last = {"number": builds[-1]["number"], "url": f"{state.url}job/{name}/{builds[-1]['number']}/"} \
                            if builds else None
                        return self._reply(200, {"name": name, "fullName": name, "url": f"{state.url}job/{name}/",
                                                 "color": "blue" if builds else "notbuilt",
                                                 "inQueue": False, "lastBuild": last, "builds": builds})
                    if len(rest) == 3 and rest[1:] == ["api", "json"] and rest[0].isdigit():
                        for build in builds:
                            if build["number"] == int(rest[0]):
                                return self._reply(200, build)
                if len(segments) >= 2 and segments[0] == "view" and segments[1] in state.views:
                    if segments[2:] == ["config.xml"]:
                        return self._reply(200, state.views[segments[1]])
                    if segments[2:] == ["api", "json"]:
                        return self._reply(200, {"name": segments[1], "jobs": []})
            return self._reply(404, "Not Found")

        def do_POST(self):
            request = self._record()
            segments = [s for s in request.path.split("/") if s]
            name = request.query.get("name", [""])[0]
            with state.lock:
                if segments == ["createItem"] and name:
                    if name in state.jobs:
                        return self._reply(400, f"A job already exists with the name '{name}'")
                    state.jobs[name] = request.body
                    return self._reply(200)
                if segments == ["createView"] and name:
                    state.views[name] = request.body
                    return self._reply(200)
                if len(segments) == 3 and segments[0] == "job" and segments[1] in state.jobs:
                    job = segments[1]
                    if segments[2] == "config.xml":
                        state.jobs[job] = request.body
                        return self._reply(200)
                    if segments[2] in ("build", "buildWithParameters"):
                        params = {k: v[0] for k, v in request.query.items()}
                        state.queue.append((job, params))
                        number = len(state.builds.setdefault(job, [])) + 1
                        state.builds[job].append({"number": number, "result": "SUCCESS", "building": False,
                                                  "url": f"{state.url}job/{job}/{number}/",
                                                  "actions": [{"parameters": [{"name": k, "value": v}
                                                                              for k, v in params.items()]}]})
                        return self._reply(201, b"", {"Location": f"{state.url}queue/item/{len(state.queue)}/"})
                if len(segments) == 3 and segments[0] == "view" and segments[1] in state.views \
                        and segments[2] == "config.xml":
                    state.views[segments[1]] = request.body
                    return self._reply(200)
            return self._reply(404, "Not Found")

    return Handler


class running:
    """`with running() as jenkins:` a StandInJenkins on a free loopback port."""

    def __enter__(self) -> StandInJenkins:
        self.state = StandInJenkins()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.state.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.state

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
