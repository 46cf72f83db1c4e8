"""Stand-ins for Jenkins in tests (Jenkins itself cannot be downloaded on these machines): a small
HTTP server that records every request and answers the REST endpoints mlci uses, and BuildRunner,
which runs rendered freestyle jobs and follows their triggers as Jenkins would.

Endpoints (as Jenkins 2.x answers them): /api/json, /crumbIssuer/api/json (404: CSRF off),
/pluginManager/api/json?depth=1, /createItem, /job/<n>/config.xml, /job/<n>/api/json,
/job/<n>/buildWithParameters, /job/<n>/build, /job/<n>/<b>/api/json, /createView, /view/<n>/config.xml,
/view/<n>/api/json, /git/notifyCommit.
"""
from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import subprocess
import sys
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


# The plugins a server with mlci's jobs has (mlci.integrations.jenkins.REQUIRED_PLUGINS), with the
# long names and versions a Jenkins 2.462 LTS update center installs.
REQUIRED_PLUGINS = {
    "git": ("Git plugin", "5.5.2"), "github": ("GitHub plugin", "1.40.0"),
    "parameterized-trigger": ("Parameterized Trigger plugin", "806.vf6fff3e28c3e"),
    "email-ext": ("Email Extension Plugin", "1844.v3ea_a_b_842374a_"),
    "build-pipeline-plugin": ("Build Pipeline Plugin", "2.0.2"),
    "htmlpublisher": ("HTML Publisher plugin", "1.36"), "description-setter": ("Description Setter", "239.vd0a_6b_785f92d"),
    "plot": ("Plot plugin", "2.1.12"), "timestamper": ("Timestamper", "1.27"),
}


def plugin_entry(short_name: str, active: bool) -> dict:
    """One plugin as pluginManager/api/json?depth=1 lists it (Jenkins 2.x)."""
    long_name, version = REQUIRED_PLUGINS.get(short_name, (short_name, "1.0"))
    return {"active": active, "backupVersion": None, "bundled": False, "deleted": False, "dependencies": [],
            "downgradable": False, "enabled": active, "hasUpdate": False, "longName": long_name, "pinned": False,
            "requiredCoreVersion": "2.440.3", "shortName": short_name, "supportsDynamicLoad": "MAYBE",
            "url": f"https://plugins.jenkins.io/{short_name}", "version": version}


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
    auth: str | None = None  # "user:token" to require, as Jenkins does without anonymous read access
    # installed plugins (short name -> active), as the Plugin Manager lists them; default: what mlci needs
    plugins: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(REQUIRED_PLUGINS, True))
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

        def _refused(self, request: Request) -> bool:
            if state.auth is not None and request.user != state.auth:
                self._reply(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="Jenkins"'})
                return True
            return False

        def do_GET(self):
            request = self._record()
            if self._refused(request):
                return
            segments = [s for s in request.path.split("/") if s]
            with state.lock:
                if segments in (["api", "json"], []):
                    return self._reply(200, {"jobs": [{"name": n, "url": f"{state.url}job/{n}/", "color": "blue"}
                                                      for n in state.jobs],
                                             "views": [{"name": n, "url": f"{state.url}view/{n}/"} for n in state.views]})
                if segments == ["pluginManager", "api", "json"]:
                    return self._reply(200, {"_class": "hudson.LocalPluginManager",
                                             "plugins": [plugin_entry(n, a) for n, a in state.plugins.items()]})
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
            if self._refused(request):
                return
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
                                                  "description": None,
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


# ----------------------------------------------------------------------------- running builds


@dataclass
class Build:
    job: str
    number: int
    result: str  # SUCCESS | UNSTABLE | FAILURE
    params: dict[str, str]
    log: str
    description: str | None = None  # what the Description Setter publisher set
    archived: list[str] = field(default_factory=list)  # workspace paths the ArtifactArchiver kept (fingerprinted)
    fingerprinted: bool = False
    reports: dict[str, str] = field(default_factory=dict)  # HTML Publisher report name -> its index page's text
    plot_points: list[str] = field(default_factory=list)  # Plot plugin: the properties files' YVALUE


class BuildRunner:
    """Runs rendered freestyle jobs the way Jenkins does, for the parts the mlci jobs use: string
    parameters, the git SCM (clone, GIT_COMMIT), shell steps, and these publishers: Parameterized Trigger
    (condition, current parameters, properties files, "don't trigger if a file is missing"), Description
    Setter (the first log line matching the regexp), Artifact Archiver, HTML Publisher and Plot (what each
    would pick up from the workspace).

    Build results as Jenkins decides them: a shell step that exits 0 passes; one that exits with the step's
    `unstableReturn` (the JJB shell builder's `unstable-return`) marks the build UNSTABLE and the next step
    still runs; any other exit code marks it FAILURE and ends the build steps. Publishers then run.
    """

    PT = "hudson.plugins.parameterizedtrigger."
    ORDER = {"SUCCESS": 0, "UNSTABLE": 1, "FAILURE": 2}

    def __init__(self, xml_dir, root, env: dict[str, str], max_builds: int = 40):
        self.jobs = {p.stem: ET.parse(p).getroot() for p in Path(xml_dir).glob("*.xml")}
        self.root = Path(root)
        self.env = env
        self.max_builds = max_builds
        self.builds: list[Build] = []

    def _defaults(self, job: str) -> dict[str, str]:
        return {p.findtext("name"): p.findtext("defaultValue") or ""
                for p in self.jobs[job].iter("hudson.model.StringParameterDefinition")}

    def _checkout(self, job: str, workspace) -> dict[str, str]:
        scm = self.jobs[job].find("scm")
        if scm is None or scm.get("class") != "hudson.plugins.git.GitSCM":
            return {}
        url = scm.findtext("userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url")
        branch = scm.findtext("branches/hudson.plugins.git.BranchSpec/name")
        if scm.find("extensions/hudson.plugins.git.extensions.impl.WipeWorkspace") is not None:
            shutil.rmtree(workspace)
        subprocess.run(["git", "clone", "-q", "-b", branch, url, str(workspace)], check=True, capture_output=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workspace, check=True, capture_output=True,
                                text=True).stdout.strip()
        return {"GIT_COMMIT": commit, "GIT_BRANCH": f"origin/{branch}", "GIT_URL": url}

    def build(self, job: str, params: dict[str, str]) -> tuple[Build, list[tuple[str, dict[str, str]]]]:
        number = 1 + sum(1 for b in self.builds if b.job == job)
        workspace = self.root / "workspace" / job
        workspace.mkdir(parents=True, exist_ok=True)
        values = {**self._defaults(job), **params}
        env = {**self.env, **values, "WORKSPACE": str(workspace), "BUILD_NUMBER": str(number), "JOB_NAME": job,
               "BUILD_TAG": f"jenkins-{job}-{number}", "BUILD_URL": f"http://jenkins.invalid/job/{job}/{number}/",
               "JOB_URL": f"http://jenkins.invalid/job/{job}/"}
        env.update(self._checkout(job, workspace))
        result, log = "SUCCESS", ""
        for index, step in enumerate(self.jobs[job].iter("hudson.tasks.Shell")):
            script = self.root / "tmp" / f"{job}-{number}-{index}.sh"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(step.findtext("command"))
            os.chmod(script, 0o755)  # Jenkins runs a script with a #! line by that interpreter
            done = subprocess.run([str(script)], cwd=workspace, env=env, capture_output=True, text=True)
            log += done.stdout + done.stderr
            unstable_return = int(step.findtext("unstableReturn") or 0)
            if done.returncode == 0:
                continue
            if unstable_return and done.returncode == unstable_return:
                result = max(result, "UNSTABLE", key=self.ORDER.get)
                continue
            result = "FAILURE"
            break
        build = Build(job, number, result, values, log)
        self._publish(job, build, workspace)
        self.builds.append(build)
        return build, self._downstream(job, build, workspace)

    def _publish(self, job: str, build: Build, workspace: Path) -> None:
        """What the Description Setter, Artifact Archiver, HTML Publisher and Plot publishers would record."""
        root = self.jobs[job]
        for setter in root.iter("hudson.plugins.descriptionsetter.DescriptionSetterPublisher"):
            failed = build.result == "FAILURE"
            pattern = (setter.findtext("regexpForFailed") if failed else None) or setter.findtext("regexp")
            template = (setter.findtext("descriptionForFailed") if failed else None) or setter.findtext("description")
            for line in build.log.splitlines():
                found = re.search(pattern, line) if pattern else None
                if found:
                    build.description = found.expand(template or r"\1")
                    break
        for archiver in root.iter("hudson.tasks.ArtifactArchiver"):
            for pattern in archiver.findtext("artifacts").split(","):
                build.archived += sorted(str(Path(p).relative_to(workspace)) for p in
                                         glob.glob(str(workspace / pattern.strip()), recursive=True) if Path(p).is_file())
            build.fingerprinted = archiver.findtext("fingerprint") == "true"
            if not build.archived and archiver.findtext("allowEmptyArchive") != "true":
                build.result = "FAILURE"
        for target in root.iter("htmlpublisher.HtmlPublisherTarget"):
            page = workspace / target.findtext("reportDir") / target.findtext("reportFiles")
            if page.is_file():
                build.reports[target.findtext("reportName")] = page.read_text(encoding="utf-8")
            elif target.findtext("allowMissing") != "true":
                build.result = "FAILURE"
        for series in root.iter("hudson.plugins.plot.PropertiesSeries"):
            path = workspace / series.findtext("file")
            if path.is_file():
                build.plot_points += [line.partition("=")[2] for line in path.read_text().splitlines()
                                      if line.startswith("YVALUE=")]

    def _downstream(self, job: str, build: Build, workspace) -> list[tuple[str, dict[str, str]]]:
        wanted = {"SUCCESS": {"SUCCESS"}, "UNSTABLE": {"UNSTABLE"}, "UNSTABLE_OR_BETTER": {"SUCCESS", "UNSTABLE"},
                  "UNSTABLE_OR_WORSE": {"UNSTABLE", "FAILURE"}, "FAILED": {"FAILURE"},
                  "ALWAYS": {"SUCCESS", "UNSTABLE", "FAILURE"}, "FAILED_OR_BETTER": {"SUCCESS", "UNSTABLE", "FAILURE"}}
        queued = []
        for config in self.jobs[job].iter(self.PT + "BuildTriggerConfig"):
            if build.result not in wanted[config.findtext("condition")]:
                continue
            params: dict[str, str] = {}
            if config.find(f"configs/{self.PT}CurrentBuildParameters") is not None:
                params.update(build.params)
            files = config.find(f"configs/{self.PT}FileBuildParameters")
            if files is not None:
                path = workspace / files.findtext("propertiesFile")
                if not path.exists():
                    if files.findtext("failTriggerOnMissing") == "true":
                        continue
                else:
                    for line in path.read_text().splitlines():
                        key, sep, value = line.partition("=")
                        if sep and not line.startswith("#"):
                            params[key.strip()] = value.strip()
            for project in config.findtext("projects").split(","):
                queued.append((project.strip(), params))
        return queued

    def run(self, job: str, params: dict[str, str] | None = None) -> list[Build]:
        """Build `job`, then whatever its triggers start, in order, until the queue is empty."""
        queue = [(job, params or {})]
        while queue:
            if len(self.builds) >= self.max_builds:
                raise AssertionError(f"more than {self.max_builds} builds: the chain does not end")
            name, values = queue.pop(0)
            _, more = self.build(name, values)
            queue.extend(more)
        return self.builds


# ----------------------------------------------------------------------------- helpers for chain tests

REPO = Path(__file__).resolve().parents[1]


def mlci_on_path(folder: Path) -> str:
    """A `mlci` command for the scripts: this checkout's mlci, as an agent would have it installed."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "mlci"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO / "src"}${{PYTHONPATH:+:$PYTHONPATH}}" '
                       f'exec "{sys.executable}" -m mlci "$@"\n')
    wrapper.chmod(0o755)
    return str(folder)


def model_repo(folder: Path, model_source: str, config: str) -> str:
    """A real git repository holding one model commit; returns the commit."""
    folder.mkdir()
    (folder / "digits_knn.py").write_text(model_source)
    (folder / "mlci.toml").write_text(config)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "model"]):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()


def logs_of(builds) -> str:
    return "\n".join(f"--- {b.job} #{b.number} {b.result}\n{b.log[-1500:]}" for b in builds)
