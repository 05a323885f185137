"""The z2jh values (deploy/jupyterhub/config.yaml, lti13.yaml) against the chart's own schema and the course's sizing.

helm validates the *merged* values (the chart's values.yaml with the user's files over it) against
values.schema.json before rendering; the test does the same with the files vendored from the chart's
4.4.0 tag, and shows that a misspelt key or a wrong type is refused.
"""

import copy
import hashlib
import re

import jsonschema
import pytest
import yaml
from jupyterhub.traitlets import ByteSpecification

from course_lib.dev import capacity
from course_lib.paths import REPO_ROOT

HERE = REPO_ROOT / "deploy" / "jupyterhub"
CHART_VERSION = "4.4.0"
MIB = 2**20


def load(name: str) -> dict:
    return yaml.safe_load((HERE / name).read_text())


def helm_merge(defaults: dict, overrides: dict) -> dict:
    """Helm's coalescing of values: maps merge key by key, other values replace, null deletes."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = load("values.schema.yaml")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: jsonschema.Draft7Validator, *layers: dict) -> list[str]:
    values = load("chart-values.yaml")
    for layer in layers:
        values = helm_merge(values, layer)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def test_the_vendored_chart_files_are_unchanged_and_named():
    readme = (HERE / "README.md").read_text()
    assert f"**{CHART_VERSION}**" in readme and f"release tag `{CHART_VERSION}`" in readme
    for name in ("values.schema.yaml", "chart-values.yaml"):
        digest = hashlib.sha256((HERE / name).read_bytes()).hexdigest()
        assert f"{name}: `{digest}`" in readme, f"{name} differs from the copy the README names"
    assert f"--version {CHART_VERSION}" in (HERE / "config.yaml").read_text()
    assert f"--version {CHART_VERSION}" in (REPO_ROOT / "docs" / "kubernetes.md").read_text()


def test_the_course_values_pass_the_charts_schema(validator):
    assert errors(validator) == []  # the chart's own defaults
    assert errors(validator, load("config.yaml")) == []
    assert errors(validator, load("config.yaml"), load("lti13.yaml")) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"singleuser": {"memroy": {"limit": "4G"}}}, "'memroy' was unexpected"),
        ({"cull": {"timeout": "an hour"}}, "is not of type"),
        ({"scheduling": {"userPlaceholder": {"replica": 3}}}, "'replica' was unexpected"),
        ({"hub": {"config": {"lowercase": {}}}}, "does not match any of the regexes"),
    ],
)
def test_the_schema_refuses_a_wrong_key_or_type(validator, change, expected):
    found = errors(validator, load("config.yaml"), change)
    assert any(expected in error for error in found), found


def memory_mib(text: str) -> float:
    """KubeSpawner's reading of a size: 'K', 'M', 'G', 'T' are powers of 1024 (jupyterhub's ByteSpecification)."""
    return ByteSpecification().validate(None, text) / MIB


def memory_settings(values: dict) -> dict[str, str]:
    """Every memory guarantee and limit a student server can get: the defaults and each profile's."""
    found = {f"singleuser.memory.{k}": v for k, v in values["singleuser"]["memory"].items()}
    for profile in values["singleuser"]["profileList"]:
        override = profile.get("kubespawner_override", {})
        for key in ("mem_guarantee", "mem_limit"):
            if key in override:
                found[f"{profile['display_name']}: {key}"] = override[key]
    return found


def test_no_guarantee_or_limit_is_below_the_peak_of_any_notebook():
    measured = capacity.read_measurements()
    name, peak = measured.peak_notebook
    settings = memory_settings(load("config.yaml"))
    assert len(settings) == 4
    for where, text in settings.items():
        assert memory_mib(text) >= peak, f"{where} = {text} is below {name}'s measured kernel peak ({peak:,.0f} MiB)"
    values = load("config.yaml")["singleuser"]
    assert memory_mib(values["memory"]["guarantee"]) == capacity.student_memory_guarantee_mib(measured)
    assert values["cpu"]["guarantee"] == capacity.Assumptions().cpu_guarantee


def test_the_rule_catches_a_guarantee_below_the_peak():
    peak = capacity.read_measurements().peak_notebook[1]
    assert memory_mib("1G") < peak <= memory_mib("1536M")  # the z2jh default would fail the rule


def test_placeholders_and_spawn_limit_follow_the_capacity_model():
    values = load("config.yaml")
    measured = capacity.read_measurements()
    assumptions = capacity.Assumptions()
    per_node = capacity.users_per_node(
        assumptions.node, capacity.student_memory_guarantee_mib(measured), assumptions.cpu_guarantee, assumptions
    )
    rush = capacity.rush(values["custom"]["tfCourse"]["classSize"], per_node, assumptions)
    assert values["scheduling"]["userPlaceholder"]["replicas"] == rush.placeholders
    assert values["hub"]["concurrentSpawnLimit"] >= rush.pending_spawns
    assert values["scheduling"]["userScheduler"]["enabled"] and values["scheduling"]["podPriority"]["enabled"]
    assert values["cull"]["enabled"] and values["cull"]["timeout"] > 0


def test_the_singleuser_image_is_the_course_image():
    image = load("config.yaml")["singleuser"]["image"]
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)", (REPO_ROOT / "requirements.txt").read_text(), re.M))
    version = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert version
    assert image["name"].endswith("/tf-course-lab")
    assert image["tag"] == f"{version.group(1)}-tf{pins['tensorflow']}"
    assert f"FROM tensorflow/tensorflow:{pins['tensorflow']}-gpu" in (REPO_ROOT / "Dockerfile").read_text()
    assert pins["jupyterhub"]  # the image has jupyterhub-singleuser, the chart's default cmd


def test_the_gpu_profile_asks_for_a_gpu_grows_its_memory_and_a_larger_shm():
    values = load("config.yaml")["singleuser"]
    gpu = next(p for p in values["profileList"] if "GPU" in p["display_name"])["kubespawner_override"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["environment"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    default_shm = values["storage"]["extraVolumes"]["shm"]["emptyDir"]["sizeLimit"]
    gpu_shm = gpu["volumes"]["shm"]["emptyDir"]["sizeLimit"]
    assert memory_mib(gpu_shm.replace("i", "")) > memory_mib(default_shm.replace("i", ""))


def test_the_authenticators_options_exist():
    """Each option set for an authenticator is one of its configurable traits (a typo would be ignored)."""
    from ltiauthenticator.lti13.auth import LTI13Authenticator
    from nativeauthenticator import NativeAuthenticator

    config = helm_merge(load("config.yaml"), load("lti13.yaml"))["hub"]["config"]
    assert set(config["LTI13Authenticator"]) <= set(LTI13Authenticator.class_trait_names(config=True))
    native = load("config.yaml")["hub"]["config"]["NativeAuthenticator"]
    assert set(native) <= set(NativeAuthenticator.class_trait_names(config=True))
    authenticator = LTI13Authenticator()
    for key, value in config["LTI13Authenticator"].items():
        setattr(authenticator, key, value)  # traitlets checks the types


def test_course_id_kernel_and_formgrader_service_agree_with_the_course():
    """The names `make hub` uses on one machine: nbgrader's course id, its groups and service, the kernel."""
    from course_lib.paths import KERNEL_NAME

    course_id = re.search(r'course_id = "([^"]+)"', (REPO_ROOT / "nbgrader_config.py").read_text())
    assert course_id
    course_id = course_id.group(1)
    hub = load("config.yaml")["hub"]
    assert list(hub["services"]) == [course_id]
    assert f"formgrade-{course_id}" in hub["config"]["JupyterHub"]["load_groups"]
    scopes = [scope for role in hub["loadRoles"].values() for scope in role.get("scopes", [])]
    assert f"access:services!service={course_id}" in scopes
    assert f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}" in hub["config"]["KubeSpawner"]["args"]
    students = load("config.yaml")["singleuser"]["extraFiles"]
    assert f'course_id = "{course_id}"' in students["nbgrader-config"]["stringData"]
    extensions = students["student-server-config"]["data"]["ServerApp"]["jpserver_extensions"]
    assert extensions["nbgrader.server_extensions.formgrader"] is False
    formgrader = yaml.safe_load_all((REPO_ROOT / "deploy" / "kubernetes" / "hub" / "formgrader.yaml").read_text())
    env = {e["name"]: e for e in next(formgrader)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_SERVICE_NAME"]["value"] == course_id
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == f"hub.services.{course_id}.apiToken"
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == f"/services/{course_id}/"
    assert hub["services"][course_id]["url"] == "http://formgrader:8888"


def test_the_steps_in_the_docs_use_the_values_of_config_yaml():
    """docs/kubernetes.md quotes the placeholders and the guarantee; they must be config.yaml's."""
    doc = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    values = load("config.yaml")["singleuser"]
    replicas = load("config.yaml")["scheduling"]["userPlaceholder"]["replicas"]
    assert f"scheduling.userPlaceholder.replicas={replicas} " in doc
    assert f"`userPlaceholder.replicas: {replicas}`" in doc
    assert f"{memory_mib(values['memory']['guarantee']):,.0f} MiB guaranteed" in doc
