"""Reading the deployment files as the tools that run them do: docker-compose.yml, the
Kubernetes base under deploy/k8s (a resources-only kustomization, so the rendered base is its
files' documents in order), the Dockerfiles, and the processes all of them start."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
SECRETS_EXAMPLE = K8S_DIR / "secrets.example.yaml"
GRAFANA_DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "labbot.json"
ENV_EXAMPLE = REPO_ROOT / "deploy" / "labbot.env.example"
# The Kubernetes versions the manifests are validated against: the oldest this deployment
# supports, and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Objects whose types come from operators, not from Kubernetes' API (no PyPI package ships
# their schemas): checked by the tests for what they refer to.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())  # resolves the `<<` merges, as compose does
    assert isinstance(data, dict)
    return data


def kustomization() -> dict[str, Any]:
    data = yaml.safe_load(KUSTOMIZATION.read_text())
    assert isinstance(data, dict)
    return data


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def rendered_base() -> list[tuple[Path, dict[str, Any]]]:
    """What `kubectl apply -k deploy/k8s` applies. The kustomization may only list resources
    (test_kubernetes checks it), which kustomize emits as they are."""
    return [
        (K8S_DIR / name, doc)
        for name in kustomization()["resources"]
        for doc in load_documents(K8S_DIR / name)
    ]


def every_manifest() -> list[tuple[Path, dict[str, Any]]]:
    """The base and the Secrets example the operator applies beside it."""
    return [*rendered_base(), *((SECRETS_EXAMPLE, doc) for doc in load_documents(SECRETS_EXAMPLE))]


def find(docs: list[tuple[Path, dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


@dataclass
class Workload:
    kind: str
    name: str
    replicas: int
    pod_labels: dict[str, str]
    pod: dict[str, Any]
    claim_templates: tuple[str, ...] = ()

    def containers(self, *, init: bool = True) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = list(self.pod["containers"])
        if init:
            found = [*self.pod.get("initContainers", []), *found]
        return found


def workloads(docs: list[tuple[Path, dict[str, Any]]] | None = None) -> list[Workload]:
    found = []
    for _, doc in rendered_base() if docs is None else docs:
        if doc["kind"] in WORKLOAD_KINDS:
            template = doc["spec"]["template"]
            found.append(
                Workload(
                    kind=doc["kind"],
                    name=doc["metadata"]["name"],
                    replicas=int(doc["spec"].get("replicas", 1)),
                    pod_labels=template["metadata"].get("labels", {}),
                    pod=template["spec"],
                    claim_templates=tuple(
                        t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])
                    ),
                )
            )
    return found


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


# --- Dockerfiles ------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped."""
    found: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, arguments = text.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip(), start))
    return found


def dockerfile_cmd(path: Path) -> list[str]:
    """The image's default command (exec form), what a container runs without a command."""
    cmds = [i for i in dockerfile_instructions(path) if i.keyword == "CMD"]
    assert cmds, f"{path} has no CMD"
    argv = json.loads(cmds[-1].arguments)
    assert isinstance(argv, list)
    return [str(a) for a in argv]


def labbot_images() -> dict[str, Path]:
    """Image name (without tag) -> the Dockerfile that builds it, from docker-compose.yml's
    build sections: the same names are used by the Kubernetes manifests."""
    images: dict[str, Path] = {}
    for service in load_compose()["services"].values():
        if "build" in service:
            name = service["image"].split(":")[0]
            images[name] = REPO_ROOT / service["build"]["dockerfile"]
    return images


# --- the processes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Process:
    """One command a deployment file starts, with where it comes from."""

    source: str
    image: str
    argv: tuple[str, ...]


def _as_argv(value: str | list[Any] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _image_name(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def compose_processes(compose: dict[str, Any] | None = None) -> list[Process]:
    compose = load_compose() if compose is None else compose
    images = labbot_images()
    found = []
    for name, service in compose["services"].items():
        image = service["image"]
        entrypoint = _as_argv(service.get("entrypoint"))
        command = _as_argv(service.get("command"))
        if command is None and _image_name(image) in images:
            command = dockerfile_cmd(images[_image_name(image)])
        argv = [*(entrypoint or []), *(command or [])]
        if argv:
            found.append(Process(f"compose service {name}", image, tuple(argv)))
        test = service.get("healthcheck", {}).get("test")
        if isinstance(test, list) and test and test[0] == "CMD":
            found.append(Process(f"compose healthcheck of {name}", image, tuple(test[1:])))
    return found


def kubernetes_processes(docs: list[tuple[Path, dict[str, Any]]] | None = None) -> list[Process]:
    images = labbot_images()
    found = []
    for workload in workloads(docs):
        for container in workload.containers():
            image = container["image"]
            where = f"{workload.kind}/{workload.name} container {container['name']}"
            command = container.get("command")
            args = container.get("args")
            if command is None and args is None and _image_name(image) in images:
                command = dockerfile_cmd(images[_image_name(image)])
            argv = [*(command or []), *(args or [])]
            if argv:
                found.append(Process(where, image, tuple(argv)))
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                exec_ = container.get(probe, {}).get("exec")
                if exec_:
                    found.append(Process(f"{where} {probe}", image, tuple(exec_["command"])))
    return found


def dockerfile_processes() -> list[Process]:
    found = []
    for image, dockerfile in labbot_images().items():
        found.append(Process(f"{dockerfile.name} CMD", image, tuple(dockerfile_cmd(dockerfile))))
        for instruction in dockerfile_instructions(dockerfile):
            if instruction.keyword == "HEALTHCHECK":
                _, _, exec_form = instruction.arguments.partition("CMD ")
                argv = json.loads(exec_form)
                found.append(Process(f"{dockerfile.name} HEALTHCHECK", image, tuple(argv)))
    return found


URLOPEN = re.compile(r"urlopen\('http://127\.0\.0\.1:(\d+)(/[^']*)'\)")


def probe_url(argv: tuple[str, ...]) -> tuple[int, str] | None:
    """The port and path of a `python -c "...urlopen('http://127.0.0.1:PORT/PATH')"` check."""
    if len(argv) == 3 and argv[0] in {"python", "python3"} and argv[1] == "-c":
        match = URLOPEN.fullmatch(
            argv[2].removeprefix("import urllib.request; urllib.request.").strip()
        )
        if match:
            return int(match.group(1)), match.group(2)
    return None


def iter_env_names(container: dict[str, Any]) -> Iterator[str]:
    for entry in container.get("env", []):
        yield entry["name"]
