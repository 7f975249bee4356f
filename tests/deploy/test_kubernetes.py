"""The Kubernetes base (deploy/k8s): every object valid against the Kubernetes API schemas
that kubernetes-validate ships, and the objects consistent with each other and with labbot."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
from kubernetes_validate import utils as kubernetes_validate
from referencing import Registry, Resource

from tests.conftest import REPO_ROOT
from tests.deploy.manifests import (
    CUSTOM_RESOURCES,
    K8S_DIR,
    KUBERNETES_VERSIONS,
    KUSTOMIZATION,
    SECRETS_EXAMPLE,
    Workload,
    dockerfile_instructions,
    every_manifest,
    find,
    kustomization,
    labbot_images,
    load_documents,
    rendered_base,
    selector_matches,
    workloads,
)

GPU = "nvidia.com/gpu"


def api_type_validator(type_name: str, version: str) -> jsonschema.Validator:
    """A validator for one Kubernetes API type (ObjectMeta, LabelSelector...) from the
    definitions kubernetes-validate ships, for the parts of custom resources that are them."""
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    definitions = kubernetes_validate.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(definitions) @ Registry()
    schema = {
        "$ref": f"{definitions['$id']}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.{type_name}"
    }
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(doc: dict[str, Any], version: str) -> None:
    """Raises kubernetes-validate's ValidationError, or SchemaNotFoundError for a kind the
    Kubernetes API does not have."""
    kubernetes_validate.validate(doc, version, strict=True)


def workload(name: str) -> Workload:
    (found,) = [w for w in workloads() if w.name == name]
    return found


def container_ports(pod: dict[str, Any]) -> dict[str, int]:
    return {
        port["name"]: port["containerPort"]
        for container in pod["containers"]
        for port in container.get("ports", [])
        if "name" in port
    }


def config() -> dict[str, str]:
    data: dict[str, str] = find(rendered_base(), "ConfigMap", "labbot-config")["data"]
    return data


def gpus(container: dict[str, Any]) -> int:
    return int(container.get("resources", {}).get("limits", {}).get(GPU, 0))


def test_the_kustomization_is_a_plain_list_of_every_manifest() -> None:
    # Only `resources`: what kubectl's kustomize renders is then exactly these files.
    base = kustomization()
    assert set(base) == {"apiVersion", "kind", "resources"}
    assert base["kind"] == "Kustomization"
    listed = set(base["resources"])
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {KUSTOMIZATION.name, SECRETS_EXAMPLE.name}
    assert listed == on_disk


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates(version: str) -> None:
    checked = 0
    for path, doc in every_manifest():
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue
        try:
            validate(doc, version)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{path.name}: {exc.message}")
        checked += 1
    assert checked >= 25


MUTATIONS = [
    pytest.param(
        "Deployment",
        "labbot-api",
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolicyy="Always"),
        id="misspelt-field",
    ),
    pytest.param(
        "Deployment", "labbot-worker", lambda d: d["spec"].update(replicas="two"), id="wrong-type"
    ),
    pytest.param(
        "StatefulSet",
        "labbot-teacher",
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
        id="missing-required-field",
    ),
    pytest.param(
        "HorizontalPodAutoscaler",
        "labbot-api",
        lambda d: d["spec"]["metrics"][0]["resource"]["target"].update(type=["Utilization"]),
        id="hpa-target-type-not-a-string",
    ),
    pytest.param(
        "NetworkPolicy",
        "labbot-teacher",
        lambda d: d["spec"].update(policyTypes="Ingress"),
        id="networkpolicy-types-not-a-list",
    ),
]


@pytest.mark.parametrize(("kind", "name", "mutate"), MUTATIONS)
def test_a_broken_manifest_fails(kind: str, name: str, mutate: Any) -> None:
    doc = copy.deepcopy(find(rendered_base(), kind, name))
    validate(doc, KUBERNETES_VERSIONS[0])  # valid as committed
    mutate(doc)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(doc, KUBERNETES_VERSIONS[0])


def test_an_unknown_kind_is_not_passed_over() -> None:
    doc = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate(doc, KUBERNETES_VERSIONS[0])


def test_api_probes_autoscaling_and_exposure(client: Any) -> None:
    base = rendered_base()
    api = workload("labbot-api")
    (container,) = api.pod["containers"]
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = container["readinessProbe"]["httpGet"]
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    ports = container_ports(api.pod)
    for probe in probes.values():
        assert probe["port"] in ports
        # The app answers them (here on the embedded and the production backends).
        assert client.get(probe["path"]).status_code == 200, probe["path"]
    hpa = find(base, "HorizontalPodAutoscaler", "labbot-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "labbot-api",
    }
    # Utilization targets are relative to requests: without them the HPA cannot scale.
    assert container["resources"]["requests"]["cpu"]
    ingress = find(base, "Ingress", "labbot")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = find(base, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, api.pod_labels)


def test_every_service_reaches_named_ports_of_its_pods() -> None:
    all_workloads = workloads()
    for _, doc in rendered_base():
        if doc["kind"] != "Service":
            continue
        selected = [
            w
            for w in all_workloads
            if selector_matches({"matchLabels": doc["spec"]["selector"]}, w.pod_labels)
        ]
        assert selected, f"Service {doc['metadata']['name']} selects no pods"
        for port in doc["spec"]["ports"]:
            for w in selected:
                assert port["targetPort"] in container_ports(w.pod), (doc["metadata"], port)


def test_statefulsets_have_their_headless_services() -> None:
    # The headless Service gives each pod a stable DNS name, <pod>.<service>.
    base = rendered_base()
    for _, doc in base:
        if doc["kind"] == "StatefulSet":
            service = find(base, "Service", doc["spec"]["serviceName"])
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector_matches({"matchLabels": service["spec"]["selector"]}, labels)
            if doc["metadata"]["name"] != "labbot-redis":
                assert service["spec"]["clusterIP"] == "None", doc["metadata"]["name"]


def test_the_service_monitor_scrapes_the_api_metrics(client: Any) -> None:
    base = rendered_base()
    (monitor,) = [d for _, d in base if d["kind"] == "ServiceMonitor"]
    services = [
        d
        for _, d in base
        if d["kind"] == "Service"
        and selector_matches(monitor["spec"]["selector"], d["metadata"].get("labels", {}))
    ]
    assert [s["metadata"]["name"] for s in services] == ["labbot-api"]
    # No PyPI package ships the Prometheus Operator's schema: its Kubernetes-typed parts are
    # checked against the Kubernetes types, the rest against what it refers to.
    for version in KUBERNETES_VERSIONS:
        api_type_validator("ObjectMeta", version).validate(monitor["metadata"])
        api_type_validator("LabelSelector", version).validate(monitor["spec"]["selector"])
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    with pytest.raises(jsonschema.ValidationError):
        api_type_validator("LabelSelector", KUBERNETES_VERSIONS[0]).validate({"matchLabel": {}})
    port_names = {p["name"] for p in services[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        response = client.get(endpoint["path"])
        assert response.status_code == 200
        assert "labbot_queue_depth" in response.text


def test_gpu_workloads_have_limits_node_selectors_and_tolerations() -> None:
    stage_workers = {"labbot-worker-sdg", "labbot-worker-train", "labbot-worker-eval"}
    assert stage_workers <= {w.name for w in workloads()}
    for w in workloads():
        for container in w.containers():
            resources = container.get("resources", {})
            assert resources.get("limits", {}).get("memory"), f"{w.name}/{container['name']}"
            assert resources.get("limits", {}).get("cpu"), f"{w.name}/{container['name']}"
        needs_gpu = any(gpus(c) for c in w.containers())
        if needs_gpu:
            for container in w.containers():
                requests = container["resources"]["requests"].get(GPU, 0)
                assert int(requests) == gpus(container), "GPUs are requested as limited"
            assert w.pod["nodeSelector"]
            assert any(t["key"] == GPU for t in w.pod["tolerations"]), w.name
        if w.name in stage_workers and needs_gpu:
            # A rolling update would wait for GPUs the old pod still holds.
            doc = find(rendered_base(), "Deployment", w.name)
            assert doc["spec"]["strategy"]["type"] == "Recreate", w.name
    assert gpus(workload("labbot-worker-eval").pod["containers"][0]) >= 1
    assert gpus(workload("labbot-worker-sdg").pod["containers"][0]) == 0


def test_teacher_replicas_are_listed_by_their_stable_names() -> None:
    teacher = find(rendered_base(), "StatefulSet", "labbot-teacher")
    replicas = teacher["spec"]["replicas"]
    service = teacher["spec"]["serviceName"]
    pod = teacher["spec"]["template"]["spec"]
    port = container_ports(pod)["http"]
    expected = [f"http://labbot-teacher-{i}.{service}:{port}/v1" for i in range(replicas)]
    assert replicas >= 2, "several replicas, spread by labbot"
    assert json.loads(config()["LABBOT_SDG_TEACHER_URLS"]) == expected
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--port") + 1] == str(port)
    assert int(args[args.index("--tensor-parallel-size") + 1]) == gpus(container)
    assert args[args.index("--served-model-name") + 1] == config()["LABBOT_SDG_TEACHER_MODEL"]
    assert args[0].startswith("/models/")
    assert config()["LABBOT_SDG_TEACHER_TOKENIZER"] == args[0]


def _mounted_file(w: Workload, container: dict[str, Any], path: str) -> tuple[str, str]:
    """(volume source name, key) of the file at `path` in the container."""
    volumes = {v["name"]: v for v in w.pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        source = volume.get("configMap") or volume.get("secret") or {}
        name = source.get("name") or source.get("secretName")
        if not name:
            continue
        if "subPath" in mount and mount["mountPath"] == path:
            return name, mount["subPath"]
        if path.startswith(mount["mountPath"] + "/"):
            key = path.removeprefix(mount["mountPath"] + "/")
            items = {i["path"]: i["key"] for i in source.get("items", [])}
            return name, items.get(key, key) if items else key
    raise AssertionError(f"{path} is not mounted in {w.name}")


def test_multi_node_training_wiring() -> None:
    base = rendered_base()
    nodes = find(base, "StatefulSet", "labbot-train-node")
    node_pod = nodes["spec"]["template"]["spec"]
    (sshd,) = node_pod["containers"]
    per_node = int(config()["LABBOT_TRAIN_PROCESSES_PER_NODE"])
    assert gpus(sshd) == per_node
    hostfile = find(base, "ConfigMap", "labbot-train-hostfile")["data"]["hostfile"]
    expected = [
        f"labbot-train-node-{i}.{nodes['spec']['serviceName']} slots={per_node}"
        for i in range(nodes["spec"]["replicas"])
    ]
    assert hostfile.splitlines() == expected

    train = workload("labbot-worker-train")
    worker = next(c for c in train.pod["containers"] if c["name"] == "worker")
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert _mounted_file(train, worker, env["LABBOT_TRAIN_HOSTFILE"]) == (
        "labbot-train-hostfile",
        "hostfile",
    )
    ssh_config_name, key = _mounted_file(train, worker, "/home/labbot/.ssh/config")
    ssh_config = find(base, "ConfigMap", ssh_config_name)["data"][key]
    options = dict(line.split() for line in ssh_config.splitlines()[1:])
    assert ssh_config.splitlines()[0] == "Host labbot-train-node-*"
    assert int(options["Port"]) == container_ports(node_pod)["ssh"]
    assert _mounted_file(train, worker, options["IdentityFile"]) == (
        "labbot-train-ssh",
        "id_ed25519",
    )

    # The sshd of the train nodes: its config is in the GPU image, its keys in the Secret.
    command = sshd["command"]
    config_path = command[command.index("-f") + 1]
    dockerfile = labbot_images()[sshd["image"].split(":")[0]]
    copies = {
        i.arguments.split()[-1]: i.arguments.split()[0]
        for i in dockerfile_instructions(dockerfile)
        if i.keyword == "COPY"
    }
    sshd_config_file = REPO_ROOT / copies[config_path]
    sshd_options = dict(
        line.split(maxsplit=1)
        for line in sshd_config_file.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert int(sshd_options["Port"]) == container_ports(node_pod)["ssh"]
    assert sshd_options["AllowUsers"] == options["User"] == "labbot"
    nodes_workload = workload("labbot-train-node")
    assert _mounted_file(nodes_workload, sshd, sshd_options["HostKey"]) == (
        "labbot-train-ssh",
        "ssh_host_ed25519_key",
    )
    assert _mounted_file(nodes_workload, sshd, sshd_options["AuthorizedKeysFile"]) == (
        "labbot-train-ssh",
        "authorized_keys",
    )
    # Every rank reads and writes the job's directory at the same path.
    artifacts = config()["LABBOT_ARTIFACTS_DIR"]
    for w in (train, nodes_workload):
        mounts = {m["mountPath"]: m["name"] for c in w.pod["containers"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in w.pod["volumes"]}
        claim = volumes[mounts[artifacts]]["persistentVolumeClaim"]["claimName"]
        assert claim == "labbot-artifacts"
    pvc = find(base, "PersistentVolumeClaim", "labbot-artifacts")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_references_resolve() -> None:
    base = rendered_base()
    secrets = {d["metadata"]["name"]: d for d in load_documents(SECRETS_EXAMPLE)}
    names = {(d["kind"], d["metadata"]["name"]) for _, d in base}
    for w in workloads():
        for volume in w.pod.get("volumes", []):
            if "secret" in volume:
                secret = secrets[volume["secret"]["secretName"]]
                for item in volume["secret"].get("items", []):
                    assert item["key"] in secret["stringData"], (w.name, item)
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names
        for container in w.containers():
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"] for v in w.pod.get("volumes", [])} | set(w.claim_templates)
            assert mounts <= volumes, w.name


def test_network_policies_select_real_pods_and_ports() -> None:
    pods = workloads()
    policies = [d for _, d in rendered_base() if d["kind"] == "NetworkPolicy"]
    default_deny = [p for p in policies if not p["spec"].get("ingress")]
    assert len(default_deny) == 1
    assert all(selector_matches(default_deny[0]["spec"]["podSelector"], w.pod_labels) for w in pods)
    for policy in policies:
        selected = [
            w for w in pods if selector_matches(policy["spec"]["podSelector"], w.pod_labels)
        ]
        assert selected, policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                if "podSelector" in peer:
                    assert any(selector_matches(peer["podSelector"], w.pod_labels) for w in pods)
            for port in rule.get("ports", []):
                assert all(port["port"] in container_ports(w.pod) for w in selected), port


def test_pods_run_as_the_images_non_root_user() -> None:
    images = labbot_images()
    for w in workloads():
        security = w.pod["securityContext"]
        assert security["runAsNonRoot"] is True, w.name
        for container in w.containers():
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert tag != "latest", image
            assert re.search(r"\d", tag), image
            if name in images:
                users = [
                    i.arguments
                    for i in dockerfile_instructions(images[name])
                    if i.keyword == "USER"
                ]
                assert users[-1] == f"{security['runAsUser']}:{security['runAsGroup']}", w.name


def test_every_labbot_pod_migrates_before_it_starts() -> None:
    images = set(labbot_images())
    migrating = []
    for w in workloads():
        runs_labbot = any(
            c["image"].split(":")[0] in images and c.get("command", [""])[0] == "labbot"
            for c in w.pod["containers"]
        )
        if runs_labbot:
            init = w.pod["initContainers"]
            assert [c["command"] for c in init] == [["labbot", "db", "upgrade"]], w.name
            assert init[0]["envFrom"] == w.pod["containers"][0]["envFrom"], w.name
            migrating.append(w.name)
    assert len(migrating) == 6, migrating  # API, CPU worker, beat, three stage workers


def test_manifests_dir_has_no_stray_files() -> None:
    assert {p.suffix for p in K8S_DIR.iterdir()} == {".yaml"}
