"""Jenkins integration: render the six jobs and the pipeline view from jobs/*.yaml with Jenkins
Job Builder, deploy them through python-jenkins, trigger and query builds, and job 5's decision.

Credentials come from the environment only (JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from mlci.core.errors import RunnerError, UsageError

JOB_SUFFIXES = ("1-fetch", "2-launch", "3-train", "4-check", "5-notify", "6-monitor")
ENV_URL, ENV_USER, ENV_TOKEN = "JENKINS_URL", "JENKINS_USER", "JENKINS_API_TOKEN"


# ----------------------------------------------------------------------------- where jobs/ lives


def find_jobs_dir(explicit: Path | None = None) -> Path:
    """jobs/ given by the user, else the copy inside the package (a link to the repo's jobs/)."""
    folder = explicit or Path(str(resources.files("mlci") / "jenkins_files" / "jobs"))
    if not (folder / "project.yaml").is_file():
        if explicit is not None:
            raise UsageError(f"{explicit}: no project.yaml in this folder",
                             hint="pass the jobs/ folder of the mlci repository to --jobs")
        raise UsageError(f"{folder}: the job definitions are missing from this mlci installation",
                         hint="reinstall mlci, or pass the jobs/ folder of the mlci repository to --jobs")
    return folder


def _read_project(jobs_dir: Path) -> tuple[list[Any], dict[str, Any]]:
    import yaml  # PyYAML comes with jenkins-job-builder

    path = jobs_dir / "project.yaml"
    try:
        documents = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({' '.join(str(exc).split())})", hint="fix the syntax") from None
    projects = [item["project"] for item in documents if isinstance(item, dict) and "project" in item]
    if len(projects) != 1:
        raise UsageError(f"{path}: expected exactly one '- project:' entry, found {len(projects)}",
                         hint="keep one project; copy jobs/ for a second deployment")
    return documents, projects[0]


def project_values(jobs_dir: Path) -> dict[str, Any]:
    """The deployment's parameters (git-url, branch, ...) as project.yaml sets them."""
    _, project = _read_project(jobs_dir)
    return {key: value for key, value in project.items() if key not in ("jobs", "views")}


@contextlib.contextmanager
def _prepared(jobs_dir: Path, values: Mapping[str, Any]) -> Iterator[Path]:
    """A temporary copy of jobs/ (and the scripts it embeds) with project.yaml's values replaced."""
    import yaml

    documents, project = _read_project(jobs_dir)
    allowed = [key for key in project if key not in ("jobs", "views")]
    for key, value in values.items():
        if key not in allowed:
            raise UsageError(f"{jobs_dir / 'project.yaml'}: unknown parameter '{key}'",
                             hint=f"allowed: {', '.join(allowed)}")
        project[key] = "" if value is None else str(value)
    with tempfile.TemporaryDirectory(prefix="mlci-jobs-") as tmp:
        # the templates embed ../scripts/*.sh, so the copy keeps jobs/ and scripts/ side by side
        copy = Path(tmp) / "jobs"
        shutil.copytree(jobs_dir, copy)
        scripts = (jobs_dir / ".." / "scripts").resolve()
        if scripts.is_dir():
            shutil.copytree(scripts, Path(tmp) / "scripts")
        (copy / "project.yaml").write_text(yaml.safe_dump(documents, sort_keys=False), encoding="utf-8")
        yield copy


# ----------------------------------------------------------------------------- JJB


def _jjb_config(url: str | None = None, user: str | None = None, token: str | None = None):
    from jenkins_jobs.config import JJBConfig

    # An empty config file: neither ~/.config/jenkins_jobs nor /etc/jenkins_jobs changes what mlci renders.
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as handle:
        handle.write("[job_builder]\nignore_cache=True\n[jenkins]\nquery_plugins_info=False\n"
                     f"url={url or 'http://localhost:8080/'}\n")
    try:
        config = JJBConfig(config_filename=handle.name)
    finally:
        os.unlink(handle.name)
    config.jenkins["user"], config.jenkins["password"] = user, token
    config.validate()
    return config


def _generate(jobs_dir: Path, jjb_config) -> tuple[Any, list, list]:
    from jenkins_jobs.builder import JenkinsManager
    from jenkins_jobs.errors import JenkinsJobsException
    from jenkins_jobs.loader import load_files
    from jenkins_jobs.registry import ModuleRegistry
    from jenkins_jobs.roots import Roots
    from jenkins_jobs.xml_config import XmlJobGenerator, XmlViewGenerator

    try:
        roots = Roots(jjb_config)
        load_files(jjb_config, roots, [jobs_dir])
        manager = JenkinsManager(jjb_config)
        registry = ModuleRegistry(jjb_config, manager.plugins_list)
        registry.set_macros(roots.macros)
        jobs, views = roots.generate_jobs(), roots.generate_views()
        registry.amend_job_dicts(jobs)
        return (manager, XmlJobGenerator(registry).generateXML(jobs),
                XmlViewGenerator(registry).generateXML(views))
    except (JenkinsJobsException, OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{jobs_dir}: Jenkins Job Builder cannot render the jobs ({' '.join(str(exc).split())})",
                         hint="fix the YAML; `jenkins-jobs test DIR` shows the same error") from None


@dataclass
class Rendered:
    jobs: dict[str, Path]
    views: dict[str, Path]


def render(out_dir: Path, *, jobs_dir: Path | None = None, values: Mapping[str, Any] | None = None) -> Rendered:
    """Write each job's and view's config.xml as OUT/<name>.xml (what `jenkins-jobs test -o` writes)."""
    source = find_jobs_dir(jobs_dir)
    with _prepared(source, values or {}) as prepared:
        _, xml_jobs, xml_views = _generate(prepared, _jjb_config())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = Rendered({}, {})
    for items, into in ((xml_jobs, written.jobs), (xml_views, written.views)):
        for item in items:
            path = out_dir / f"{item.name}.xml"
            path.write_bytes(item.output())
            into[item.name] = path
    return written


# ----------------------------------------------------------------------------- the server


@dataclass
class Credentials:
    url: str
    user: str | None
    token: str | None


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials:
    env = os.environ if environ is None else environ
    url = env.get(ENV_URL, "").strip()
    if not url:
        raise UsageError(f"{ENV_URL} is not set",
                         hint=f"export {ENV_URL}=https://jenkins.example.com/ (and {ENV_USER}, {ENV_TOKEN} "
                              "from your Jenkins user's Configure page)")
    url, user, token = _split_credentials(url, env.get(ENV_USER) or None, env.get(ENV_TOKEN) or None)
    if bool(user) != bool(token):
        missing = ENV_TOKEN if user else ENV_USER
        raise UsageError(f"{missing} is not set but {ENV_USER if user else ENV_TOKEN} is",
                         hint=f"export both {ENV_USER} and {ENV_TOKEN}, or neither for anonymous access")
    return Credentials(url if url.endswith("/") else url + "/", user, token)


def _split_credentials(url: str, user: str | None, token: str | None) -> tuple[str, str | None, str | None]:
    """JENKINS_URL checked, and any user:token@ inside it moved out, so no message ever shows them."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    from mlci.core.config import check_http_url

    try:
        check_http_url(url)
    except ValueError as exc:
        raise UsageError(f"{ENV_URL} is not a valid URL: {exc}",
                         hint=f"export {ENV_URL}=https://jenkins.example.com/ (credentials go in {ENV_USER} and "
                              f"{ENV_TOKEN})") from None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, user, token
    host = parts.netloc.rsplit("@", 1)[1]
    user = user or (unquote(parts.username) if parts.username else None)
    token = token or (unquote(parts.password) if parts.password else None)
    return urlunsplit(parts._replace(netloc=host)), user, token


@contextlib.contextmanager
def _talking_to(credentials: Credentials, what: str) -> Iterator[None]:
    """python-jenkins and requests failures -> one line naming the server and what to check."""
    import jenkins
    import requests

    try:
        yield
    except jenkins.NotFoundException as exc:
        raise UsageError(f"{credentials.url}: {what}: not found ({exc})",
                         hint="deploy the jobs first with `mlci jenkins deploy`") from None
    except (jenkins.JenkinsException, requests.RequestException, OSError) as exc:
        raise RunnerError(f"{credentials.url}: {what} failed ({' '.join(str(exc).split())[:300]})",
                          hint=f"check {ENV_URL}, {ENV_USER} and {ENV_TOKEN}, and that Jenkins is up") from None


def _server(credentials: Credentials, timeout: float = 30.0):
    import jenkins

    return jenkins.Jenkins(credentials.url, username=credentials.user, password=credentials.token, timeout=timeout)


@dataclass
class Deployed:
    jobs: list[str]
    views: list[str]


# The plugins the rendered jobs and view use (short name as the Plugin Manager lists it, what it does here).
# core features (build discarder, timer trigger, artifact archiving + fingerprints) need none.
REQUIRED_PLUGINS = {
    "git": "Git: job 1 checks out the model repository",
    "github": "GitHub: job 1's push trigger",
    "parameterized-trigger": "Parameterized Trigger: the chain 1 -> 2 -> 3 -> 4 -> 5 (-> 2) and 3 -> 6",
    "email-ext": "Email Extension: job 5's mail",
    "build-pipeline-plugin": "Build Pipeline: the mlci-pipeline view",
    "htmlpublisher": "HTML Publisher: report.html on the build page",
    "description-setter": "Description Setter: the build's line 'trial 3: accuracy 0.912 < 0.95'",
    "plot": "Plot: the best metric's trend across builds",
    "timestamper": "Timestamper: timestamps in the console",
}


def installed_plugins(credentials: Credentials) -> dict[str, bool]:
    """Short name -> active, as the server's pluginManager/api/json?depth=1 lists them."""
    with _talking_to(credentials, "reading the installed plugins"):
        plugins = list((_server(credentials).get_plugins(depth=1) or {}).values())
    return {str(p.get("shortName")): bool(p.get("active", True)) and bool(p.get("enabled", True))
            for p in plugins if isinstance(p, dict) and p.get("shortName")}


def missing_plugins(credentials: Credentials) -> list[str]:
    """One line per required plugin that is not installed (or installed but disabled) on the server."""
    installed = installed_plugins(credentials)
    lines = []
    for name, role in REQUIRED_PLUGINS.items():
        if name not in installed:
            lines.append(f"missing plugin '{name}' ({role}) on {credentials.url}")
        elif not installed[name]:
            lines.append(f"plugin '{name}' ({role}) is installed but disabled on {credentials.url}")
    return lines


def deploy(credentials: Credentials, *, jobs_dir: Path | None = None, values: Mapping[str, Any] | None = None,
           echo: Callable[[str], None] | None = None) -> Deployed:
    """Create or update the six jobs and the view on the server (JJB's `update`, without its cache).

    First the server's plugins are read: each required one that is missing is named (echo, one line each)
    and nothing is created.
    """
    source = find_jobs_dir(jobs_dir)
    with _prepared(source, values or {}) as prepared:
        manager, xml_jobs, xml_views = _generate(
            prepared, _jjb_config(credentials.url, credentials.user, credentials.token))
    missing = missing_plugins(credentials)
    if missing:
        for line in missing:
            (echo or (lambda _line: None))(line)
        raise UsageError(f"{credentials.url}: {len(missing)} required plugin(s) missing; nothing was deployed",
                         hint="install them (Manage Jenkins > Plugins > Available plugins), restart Jenkins, "
                              "then run `mlci jenkins deploy` again; docs/jenkins-10-minutes.md lists them")
    with _talking_to(credentials, "deploying the jobs"):
        manager.update_jobs(xml_jobs, n_workers=1)
        manager.update_views(xml_views, n_workers=1)
    return Deployed([job.name for job in xml_jobs], [view.name for view in xml_views])


def job_name(prefix: str, suffix: str) -> str:
    return f"{prefix}-{suffix}"


def trigger(credentials: Credentials, *, job: str, parameters: Mapping[str, str] | None = None) -> int:
    """Queue a build of `job` (buildWithParameters); returns the queue item number."""
    with _talking_to(credentials, f"triggering {job}"):
        return int(_server(credentials).build_job(job, dict(parameters or {}) or None) or 0)


@dataclass
class JobStatus:
    job: str
    exists: bool
    color: str | None = None  # Jenkins' ball: blue, red, notbuilt, *_anime while building
    in_queue: bool = False
    last_build: int | None = None
    result: str | None = None  # SUCCESS | FAILURE | ... | None while building
    building: bool = False
    url: str | None = None
    description: str | None = None  # the build's line: "trial 3: accuracy 0.9120 < 0.95 (...)"


def status(credentials: Credentials, *, prefix: str = "mlci") -> list[JobStatus]:
    """The six jobs' last build, in chain order."""
    server = _server(credentials)
    found = []
    for suffix in JOB_SUFFIXES:
        name = job_name(prefix, suffix)
        with _talking_to(credentials, f"reading {name}"):
            if not server.job_exists(name):
                found.append(JobStatus(name, exists=False))
                continue
            info = server.get_job_info(name)
            entry = JobStatus(name, True, info.get("color"), bool(info.get("inQueue")), url=info.get("url"))
            last = info.get("lastBuild") or {}
            if last.get("number") is not None:
                build = server.get_build_info(name, int(last["number"]))
                entry.last_build, entry.result = int(last["number"]), build.get("result")
                entry.building = bool(build.get("building"))
                entry.description = build.get("description") or None
            found.append(entry)
    return found


# ----------------------------------------------------------------------------- job 5's decision


@dataclass
class Decision:
    action: str  # retrain | notify
    event: str | None  # the `mlci notify --event` when action is notify
    reason: str


def decide(status_json: Mapping[str, Any], source: str = "status") -> Decision:
    """Job 5: the run oracle's verdict, read from `mlci status --json`: retrain the proposed trial, or notify.

    Nothing is decided here: `finished`, `event` and `next_trial` are what the oracle answered.
    """
    missing = [key for key in ("run_id", "status", "finished", "event", "next_trial") if key not in status_json]
    if missing:
        raise UsageError(f"{source}: key '{missing[0]}' missing; this is not the output of `mlci status --json`",
                         hint="write it with `mlci status --run RUN_ID --json > FILE`")
    if status_json["finished"]:
        return Decision("notify", status_json["event"], status_json.get("message") or status_json["status"])
    pending = status_json["next_trial"]
    if pending is not None:
        return Decision("retrain", None, f"trial {pending} is proposed and waits to be trained")
    run_id = status_json["run_id"]
    raise UsageError(f"{source}: run {run_id} has not ended and no trial is proposed",
                     hint=f"propose one first: `mlci tweak --run {run_id}` (job 4)")


def read_status_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found", hint="write it with `mlci status --run RUN_ID --json > FILE`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not the JSON of `mlci status --json` ({exc})",
                         hint="write it with `mlci status --run RUN_ID --json > FILE`") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must be a JSON object", hint="write it with `mlci status --run RUN_ID --json > FILE`")
    return data


PROPERTY_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


def property_lines(values: Mapping[str, Any]) -> list[str]:
    """KEY=VALUE lines (None values left out) that no value can break: a line break would inject a key
    (the Jenkinsfile takes the last RUN_ID=), a backslash or control character would change what Java's
    Properties reads. Such a value is refused with one line (exit 2), before anything is written."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        text = str(value)
        if not PROPERTY_KEY.fullmatch(key):
            raise UsageError(f"{key!r} is not a property name", hint="use upper-case letters, digits and '_'")
        bad = next((c for c in text if ord(c) < 32 or c in "\x7f\\\u2028\u2029\x85"), None)
        if bad is not None:
            shown = repr(text) if len(text) <= 120 else repr(text[:117]) + "..."
            raise UsageError(f"{key} = {shown} holds {bad!r}, which would break the properties file's lines",
                             hint="rename the file or folder so its name is plain text (no line break, "
                                  "backslash or control character)")
        lines.append(f"{key}={text}")
    return lines


def write_properties(path: Path, values: Mapping[str, Any], *, append: bool = False) -> list[str]:
    """The one writer of properties files (mlci.properties, mlci-retrain.properties); returns the lines.

    append: add to the file (several commands of one build); else replace it atomically (temp file + rename).
    """
    lines = property_lines(values)
    text = "".join(f"{line}\n" for line in lines)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if append:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(text)
            return lines
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the properties file ({exc.strerror or exc})",
                         hint="check the folder's permissions and free space") from None
    return lines


def decide_file(status_path: Path, retrain_path: Path) -> Decision:
    """Job 5: read `mlci status --json` output; on retrain write the properties that trigger job 2."""
    status_json = read_status_file(status_path)
    decision = decide(status_json, str(status_path))
    if decision.action == "retrain":
        write_properties(retrain_path, {"RUN_ID": status_json["run_id"],
                                        "NEXT_TRIAL": status_json.get("next_trial")})
    else:
        with contextlib.suppress(FileNotFoundError):
            retrain_path.unlink()
    return decision
