"""deploy/: the Kustomize manifests, rendered by `kubectl kustomize` and checked offline (no cluster
runs here): every Kubernetes object against Kubernetes' own JSON schemas, strict, for
KUBERNETES_VERSION (kubernetes-validate ships them); the InferenceService against the fields
KServe's Python SDK declares (no registry package ships the CRD's openAPIV3Schema: the test
downloads the `kserve` wheel requirements.txt pins, `--no-deps`, and reads its `V1beta1*` models'
`openapi_types` and `attribute_map` without importing them; the Kubernetes types inside against
Kubernetes' schemas); then what no schema knows.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import copy
import functools
import operator
import os
import re
import sys
import zipfile
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from housing_predictor.models import load_models
from housing_predictor.server import settings as server_settings
from housing_predictor.server.app import create_app

from conftest import REPO, run

KUBERNETES_VERSION = "1.32"  # what the manifests are validated for: kubectl's here and on GitHub's runners
DEPLOY = REPO / "deploy"
OVERLAYS = {"base": DEPLOY / "base", "kserve": DEPLOY / "overlays" / "kserve"}
KSERVE_KIND = ("serving.kserve.io/v1beta1", "InferenceService")


def render(directory: Path) -> list[dict]:
    """`kubectl kustomize directory`: the objects it renders."""
    return [o for o in yaml.safe_load_all(run(["kubectl", "kustomize", str(directory)], cwd=REPO).stdout) if o]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(directory) for name, directory in OVERLAYS.items()}


def the(objects: list[dict], kind: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    """Every pod spec rendered: a Deployment's template's, an InferenceService predictor's."""
    pods = [(f"Deployment {o['metadata']['name']}", o["spec"]["template"]["spec"]) for o in objects if o["kind"] == "Deployment"]
    pods += [
        (f"InferenceService {o['metadata']['name']}", o["spec"]["predictor"]) for o in objects if o["kind"] == KSERVE_KIND[1]
    ]
    assert pods, "no pod spec rendered"
    return pods


def kubernetes_errors(obj: dict) -> list[str]:
    """kubernetes-validate's strict verdict on one object, as lines naming the field."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except ValidationError as error:
        return [f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}"]
    return []


# --- KServe: the fields its Python SDK declares ---------------------------------------------------


class KServeModels:
    """The `kserve` wheel's models (kserve/models/*.py), read as text: each class's
    ``openapi_types`` (attribute -> type) and ``attribute_map`` (attribute -> JSON key)."""

    def __init__(self, wheel: Path) -> None:
        self.types: dict[str, dict[str, str]] = {}
        self.keys: dict[str, dict[str, str]] = {}
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if re.fullmatch(r"kserve/models/\w+\.py", name):
                    self._read(ast.parse(archive.read(name)))
        self.definitions = referencing.Resource.from_contents(kubernetes_definitions())

    def _read(self, module: ast.Module) -> None:
        for node in module.body:
            if isinstance(node, ast.ClassDef):
                fields = {
                    stmt.targets[0].id: ast.literal_eval(stmt.value)
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", None) in ("openapi_types", "attribute_map")
                }
                if len(fields) == 2:
                    self.types[node.name] = fields["openapi_types"]
                    self.keys[node.name] = {key: attribute for attribute, key in fields["attribute_map"].items()}

    def errors(self, value: object, type_name: str, path: str) -> list[str]:
        """Every key of ``value`` that ``type_name`` does not declare, with its path."""
        if found := re.fullmatch(r"list\[(.+)\]", type_name):
            if not isinstance(value, list):
                return [f"{path}: {value!r} is not a list"]
            return [e for i, item in enumerate(value) for e in self.errors(item, found[1], f"{path}[{i}]")]
        if found := re.fullmatch(r"dict\(str, (.+)\)", type_name):
            if not isinstance(value, dict):
                return [f"{path}: {value!r} is not a map"]
            return [e for key, item in value.items() for e in self.errors(item, found[1], f"{path}.{key}")]
        if type_name in self.types:
            if not isinstance(value, dict):
                return [f"{path}: {value!r} is not an object ({type_name})"]
            declared = self.keys[type_name]
            return [
                error
                for key, item in value.items()
                for error in (
                    self.errors(item, self.types[type_name][declared[key]], f"{path}.{key}")
                    if key in declared
                    else [f"{path}.{key}: {type_name} has no field {key!r} (it has {', '.join(sorted(declared))})"]
                )
            ]
        if type_name in PLAIN_TYPES:
            return [] if isinstance(value, PLAIN_TYPES[type_name]) else [f"{path}: {value!r} is not {type_name}"]
        if type_name.startswith("V1"):  # a Kubernetes type: its schema, strict
            return self.kubernetes_errors(value, type_name, path)
        return [f"{path}: the test reads no rule for KServe's type {type_name}"]

    def kubernetes_errors(self, value: object, type_name: str, path: str) -> list[str]:
        """``value`` against Kubernetes' strict schema of ``type_name`` (V1Container: core.v1.Container...)."""
        candidates = [name for name in self.definitions.contents["$defs"] if name.endswith(f".v1.{type_name[2:]}")]
        (definition,) = [name for name in candidates if ".api.core." in name] or candidates
        schema = {"$ref": f"{kubernetes_definitions()['$id']}#/$defs/{definition}"}
        registry = self.definitions @ referencing.Registry()
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        return [f"{path}.{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(value)]


PLAIN_TYPES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


@functools.cache
def kubernetes_definitions() -> dict:
    """The strict schemas' definitions that kubernetes-validate ships for KUBERNETES_VERSION."""
    from kubernetes_validate.utils import all_versions, schema_contents

    (version,) = {v for v in all_versions() if v.startswith(f"{KUBERNETES_VERSION}.")}
    return schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", KUBERNETES_VERSION)


def kserve_pin() -> str:
    """The `kserve` version requirements.txt pins (as a comment: it is downloaded, not installed)."""
    found = re.search(r"^#\s*kserve==(\S+)", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert found, "requirements.txt pins no kserve version (a line `# kserve==X.Y.Z ...`)"
    return found[1]


@pytest.fixture(scope="module")
def kserve_models(tmp_path_factory) -> KServeModels:
    folder = tmp_path_factory.mktemp("kserve")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(folder)]
    run([*command, f"kserve=={kserve_pin()}"], cwd=folder)
    (wheel,) = folder.glob("kserve-*.whl")
    return KServeModels(wheel)


# --- the tests ------------------------------------------------------------------------------------


def test_every_kubernetes_object_is_valid(rendered):
    errors = []
    for obj in [o for objects in rendered.values() for o in objects if (o["apiVersion"], o["kind"]) != KSERVE_KIND]:
        try:
            errors += kubernetes_errors(obj)
        except SchemaNotFoundError as error:
            errors.append(error.message)
    assert not errors, "\n".join(errors)


def test_the_inference_service_has_only_fields_kserve_declares(rendered, kserve_models):
    (service,) = [o for o in rendered["kserve"] if (o["apiVersion"], o["kind"]) == KSERVE_KIND]
    errors = kserve_models.errors(service, "V1beta1InferenceService", "InferenceService")
    assert not errors, "\n".join(errors)
    container = service["spec"]["predictor"]["containers"][0]
    assert container["name"] == "kserve-container", "KServe finds the model server by this name"
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in ("RawDeployment", "Standard")


@pytest.mark.parametrize(
    "kind, path, misspelt",
    [
        ("Deployment", ["spec", "template", "spec", "containers", 0], "readinesProbe"),
        ("InferenceService", ["spec", "predictor"], "minReplica"),
        ("InferenceService", ["spec", "predictor", "containers", 0], "livenesProbe"),
    ],
)
def test_a_wrong_field_fails_by_name(rendered, kserve_models, kind, path, misspelt):
    """The checks above fail, naming the field, when a manifest has a field its schema lacks."""
    obj = copy.deepcopy(next(o for objects in rendered.values() for o in objects if o["kind"] == kind))
    functools.reduce(operator.getitem, path, obj)[misspelt] = {}
    errors = kserve_models.errors(obj, "V1beta1InferenceService", kind) if kind == KSERVE_KIND[1] else kubernetes_errors(obj)
    assert any(f"'{misspelt}'" in error for error in errors), errors


async def statuses(app, paths: list[str]) -> dict[str, int]:
    """GET each path from the ASGI app, inside its lifespan (started, as a server starts it)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http"}
    scope |= {"query_string": b"", "root_path": "", "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080)}
    sent = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        for path in paths:
            await app(scope | {"path": path, "raw_path": path.encode()}, receive, send)
    return dict(zip(paths, [message["status"] for message in sent if message["type"] == "http.response.start"], strict=True))


def test_probe_paths_are_served(rendered, built):
    """Every probe of every pod rendered asks a path the server's app answers 200, on a port the
    container declares."""
    probes = {}
    for overlay, objects in rendered.items():
        for pod_name, pod in pod_specs(objects):
            for container in pod["containers"]:
                ports = {port.get("name") for port in container["ports"]} | {port["containerPort"] for port in container["ports"]}
                for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert kind in container, f"{overlay}: {pod_name}: {container['name']} has no {kind}"
                    assert container[kind]["httpGet"]["port"] in ports, f"{overlay}: {pod_name}: {kind} port is not declared"
                    probes[f"{overlay}: {pod_name}: {kind}"] = container[kind]["httpGet"]["path"]
    app = create_app(load_models(built / "models"), "float", server_settings.DEFAULT_MAX_BODY_BYTES)
    answered = asyncio.run(statuses(app, sorted(set(probes.values()))))
    assert {probe: answered[path] for probe, path in probes.items()} == dict.fromkeys(probes, 200)


def test_the_grace_period_covers_the_drain_and_the_longest_request(rendered, monkeypatch):
    for overlay, objects in rendered.items():
        for pod_name, pod in pod_specs(objects):
            (container,) = pod["containers"]
            monkeypatch.setattr(os, "environ", {item["name"]: item["value"] for item in container["env"]})
            config = server_settings.settings(argparse.Namespace(host=None, port=None, workers=None, invocations_model=None))
            where = f"{overlay}: {pod_name}"
            assert config.drain_seconds > 0, f"{where}: no drain: the endpoints are removed while SIGTERM is delivered"
            longest_request = config.header_timeout + config.body_timeout
            assert config.graceful_timeout >= longest_request, f"{where}: in-flight requests may be cut short"
            assert pod["terminationGracePeriodSeconds"] >= config.drain_seconds + config.graceful_timeout, where


def test_pods_meet_the_restricted_pod_security_standard(rendered):
    for overlay, objects in rendered.items():
        for pod_name, pod in pod_specs(objects):
            where = f"{overlay}: {pod_name}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            assert pod["securityContext"].get("runAsUser", 1) != 0, where
            empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
            for container in pod["containers"]:
                security = container["securityContext"]
                assert security["allowPrivilegeEscalation"] is False, where
                assert security["readOnlyRootFilesystem"] is True, where
                assert security["capabilities"]["drop"] == ["ALL"] and not security["capabilities"].get("add"), where
                writable = {mount["mountPath"] for mount in container["volumeMounts"] if mount["name"] in empty_dirs}
                assert "/tmp" in writable, f"{where}: the server writes under /tmp: it needs an emptyDir there"


def test_the_service_hpa_and_pdb_select_the_deployments_pods(rendered):
    objects = rendered["base"]
    deployment = the(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service, budget, autoscaler = (the(objects, kind) for kind in ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"))
    assert service["spec"]["selector"] and service["spec"]["selector"].items() <= pod_labels.items()
    assert budget["spec"]["selector"]["matchLabels"] and budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= {port["name"] for port in container["ports"]}
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert autoscaler["spec"]["minReplicas"] >= 2, "one replica is a single point of failure"
    assert "replicas" not in deployment["spec"], "the HPA owns the count: `kubectl apply` would reset it"
    for obj in objects:
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance"} <= obj["metadata"]["labels"].keys(), obj["kind"]


def test_kserve_pods_run_as_the_base_deployments(rendered):
    """Probes, resources, security context, env, volumes: the InferenceService's predictor is the
    base Deployment's pod, but the container's name and PROTOCOL; its scaling is the HPA's."""
    pod = the(rendered["base"], "Deployment")["spec"]["template"]["spec"]
    autoscaler = the(rendered["base"], "HorizontalPodAutoscaler")["spec"]
    predictor = the(rendered["kserve"], "InferenceService")["spec"]["predictor"]
    (container,), (kserve_container,) = pod["containers"], predictor["containers"]
    kserve_env = [item for item in kserve_container["env"] if item["name"] != "PROTOCOL"]
    assert {**kserve_container, "name": container["name"], "env": kserve_env} == container
    assert {key: predictor[key] for key in pod if key != "containers"} == {
        key: value for key, value in pod.items() if key != "containers"
    }
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (autoscaler["minReplicas"], autoscaler["maxReplicas"])
    (metric,) = autoscaler["metrics"]
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == (
        metric["resource"]["name"],
        metric["resource"]["target"]["averageUtilization"],
    )


def test_the_pushed_digest_reaches_every_container(tmp_path):
    """scripts/render_manifests.sh, what the workflow renders after the push: every container of
    every overlay runs the image by that digest."""
    pushed = "registry.example/housing-mlops@sha256:" + "0123456789abcdef" * 4
    run(["bash", "scripts/render_manifests.sh", pushed, str(tmp_path)], cwd=REPO)
    for overlay in OVERLAYS:
        objects = [o for o in yaml.safe_load_all((tmp_path / f"{overlay}.yaml").read_text()) if o]
        images = [container["image"] for _, pod in pod_specs(objects) for container in pod["containers"]]
        assert images and set(images) == {pushed}, f"{overlay}: {images}"


def test_a_tag_is_refused_in_one_line(tmp_path):
    result = run(
        ["bash", "scripts/render_manifests.sh", "registry.example/housing-mlops:latest", str(tmp_path)], cwd=REPO, check=False
    )
    assert result.returncode == 2 and not list(tmp_path.iterdir())
    assert result.stderr.count("\n") == 1 and "not an image by digest" in result.stderr
