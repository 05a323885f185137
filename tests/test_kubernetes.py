"""The Kubernetes manifests (deploy/kubernetes/): schemas of named Kubernetes versions, pins, flags, sizing.

Every manifest is validated offline by kubernetes-validate in strict mode (an unknown field fails, as
`kubectl apply --validate=strict` refuses it), against two Kubernetes versions whose schemas it bundles.
The model servers' command lines are parsed by the course server's own flag parser, with the
ConfigMap's files, so flags, models.config and probes stay in step with `course_lib.serving`.
"""

import copy
import re

import kubernetes_validate
import pytest
import yaml

from course_lib.dev import capacity, kernel_limits
from course_lib.paths import REPO_ROOT
from course_lib.serving.config import TF_SERVING_FLAGS, build_flag_parser, parse_server_flags

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
# The oldest and the newest of the three minor releases upstream Kubernetes supports at the time of
# writing (1.35-1.37), both bundled by kubernetes-validate 1.37.0.
KUBERNETES_VERSIONS = ("1.35.0", "1.37.0")
TF_SERVING_IMAGE = "tensorflow/serving:2.20.0"  # the newest published TF Serving release
SERVING = MANIFESTS / "model-server"
COURSE_ONLY_FLAGS = {"host"}  # binds 127.0.0.1 by default; TF Serving binds every interface


def documents() -> list[tuple[str, dict]]:
    return [
        (f"{path.relative_to(MANIFESTS)}:{doc['kind']}", doc)
        for path in sorted(MANIFESTS.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


DOCS = documents()


def one(path: str, kind: str | None = None) -> dict:
    docs = [d for d in yaml.safe_load_all((MANIFESTS / path).read_text()) if d and (kind is None or d["kind"] == kind)]
    assert len(docs) == 1
    return docs[0]


def container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def mib(quantity: str | int) -> float:
    """A Kubernetes memory quantity in MiB (Mi/Gi are powers of 1024, M/G of 1000)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(quantity))
    assert match, quantity
    number, unit = float(match.group(1)), match.group(2) or ""
    factor = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return number * factor[unit] / 2**20


def test_there_are_manifests_of_every_kind_the_course_needs():
    kinds = {doc["kind"] for _, doc in DOCS}
    assert kinds >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
        "PersistentVolumeClaim", "Job",
    }  # fmt: skip


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[name for name, _ in DOCS])
def test_each_manifest_validates_strictly(name, doc, version):
    assert kubernetes_validate.validate(doc, version, strict=True) == version.rsplit(".", 1)[0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: container(d).__setitem__("resurces", {}), "'resurces' was unexpected"),
        (lambda d: d["spec"].__setitem__("replicas", "two"), "is not of type"),
        (lambda d: container(d)["readinessProbe"]["httpGet"].__setitem__("paht", "/"), "'paht' was unexpected"),
    ],
)
def test_the_validator_refuses_a_wrong_field(mutate, message):
    broken = copy.deepcopy(one("model-server/deployment-tf-serving.yaml"))
    mutate(broken)
    with pytest.raises(kubernetes_validate.ValidationError, match=message):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_an_api_the_version_does_not_have_is_refused():
    hpa = copy.deepcopy(one("model-server/hpa.yaml"))
    hpa["apiVersion"] = "autoscaling/v2beta2"  # removed in Kubernetes 1.26
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[0], strict=True)


def course_image() -> str:
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)", (REPO_ROOT / "requirements.txt").read_text(), re.M))
    version = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert version and f"FROM tensorflow/tensorflow:{pins['tensorflow']}-gpu" in (REPO_ROOT / "Dockerfile").read_text()
    return f"tf-course-lab:{version.group(1)}-tf{pins['tensorflow']}"


def test_image_tags_follow_the_pins():
    images = {name: c["image"] for name, doc in DOCS if "template" in doc.get("spec", {}) for c in [container(doc)]}
    assert images["model-server/deployment-tf-serving.yaml:Deployment"] == TF_SERVING_IMAGE
    assert images["model-server/deployment-tf-serving-gpu.yaml:Deployment"] == f"{TF_SERVING_IMAGE}-gpu"
    for name in ("model-server/deployment-course-server.yaml", "grading/job.yaml", "hub/formgrader.yaml"):
        image = next(v for k, v in images.items() if k.startswith(name))
        assert image.endswith("/" + course_image()), (name, image)
    # the flag list both servers share is TF Serving 2.20's
    assert "tensorflow_model_server 2.20" in (REPO_ROOT / "course_lib" / "serving" / "config.py").read_text()


def serving_deployments() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(SERVING.glob("deployment-*.yaml"))}


def flag_names(args: list[str]) -> list[str]:
    return [arg[2:].split("=", 1)[0] for arg in args]


def test_every_flag_is_a_tf_serving_flag_and_both_servers_get_the_same():
    deployments = serving_deployments()
    assert len(deployments) == 3
    tf_args = container(deployments["deployment-tf-serving.yaml"])["args"]
    assert container(deployments["deployment-tf-serving-gpu.yaml"])["args"] == tf_args
    course = container(deployments["deployment-course-server.yaml"])
    assert course["command"] == ["python", "-m", "course_lib.serving"]
    assert [a for a in course["args"] if flag_names([a])[0] not in COURSE_ONLY_FLAGS] == tf_args
    assert "--host=0.0.0.0" in course["args"]
    assert set(flag_names(tf_args)) <= set(TF_SERVING_FLAGS)
    assert set(flag_names(course["args"])) <= set(TF_SERVING_FLAGS) | COURSE_ONLY_FLAGS
    _, unknown = build_flag_parser().parse_known_args(course["args"])
    assert unknown == []


def test_the_course_server_accepts_the_command_line_with_the_configmaps_files(tmp_path):
    """parse_server_flags reads models.config, batching and monitoring files as the server does at start."""
    files = one("model-server/configmap.yaml")["data"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = [
        a.replace("=/config/", f"={tmp_path}/")
        for a in container(one("model-server/deployment-course-server.yaml"))["args"]
    ]
    options = parse_server_flags(args)
    (model,) = options.model_config.model_config_list.config
    assert (model.name, model.base_path) == ("classifier", "/models/classifier")
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}
    assert options.batching and options.batching.max_batch_size == 8
    assert options.metrics_path == "/monitoring/prometheus/metrics"
    assert options.health_service and options.host == "0.0.0.0"
    assert (options.grpc_port, options.rest_api_port) == (8500, 8501)
    mounts = {
        m["name"]: m["mountPath"] for m in container(one("model-server/deployment-course-server.yaml"))["volumeMounts"]
    }
    assert model.base_path.startswith(mounts["models"] + "/") and mounts["config"] == "/config"


def test_probes_resources_and_environment_of_the_model_servers():
    for name, deployment in serving_deployments().items():
        c = container(deployment)
        assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models/classifier", name
        assert c["livenessProbe"]["grpc"]["port"] == 8500 and "--enable_grpc_healthcheck_service=true" in c["args"]
        assert c["livenessProbe"]["failureThreshold"] > c["readinessProbe"]["failureThreshold"]
        assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 300
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["TF_CPP_MIN_LOG_LEVEL"] == "2"
        if "gpu" in name:
            assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
            assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"grpc": 8500, "http": 8501}
        threads = [a for a in c["args"] if "_op_parallelism=" in a]
        assert all(a.endswith("=" + str(c["resources"]["limits"]["cpu"])) or "gpu" in name for a in threads)


def test_service_hpa_pdb_and_volumes_point_at_what_exists():
    deployment = one("model-server/deployment-tf-serving.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one("model-server/service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    hpa = one("model-server/hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == round(100 * capacity.Assumptions().serving_utilisation)
    assert hpa["spec"]["minReplicas"] == capacity.Assumptions().min_serving_replicas
    pdb = one("model-server/pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can always evict one
    names = {(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCS}
    for _, doc in DOCS:
        for volume in doc.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names


def test_the_grading_job_runs_the_course_command_per_batch_with_the_same_limits():
    job = one("grading/job.yaml")
    assert job["spec"]["completionMode"] == "Indexed"
    c = container(job)
    script = c["args"][0]
    assert '--index "$JOB_COMPLETION_INDEX"' in script
    assert 'python -m course_lib.dev.classroom --course "$SCRATCH/course" grade "$ASSIGNMENT"' in script
    env = {e["name"]: e["value"] for e in c["env"]}
    assert int(env["COURSE_GRADING_MEMORY_MB"]) == kernel_limits.DEFAULT_MEMORY_MB
    assert int(env["COURSE_GRADING_CPU_SECONDS"]) == kernel_limits.DEFAULT_CPU_SECONDS
    timeout = re.search(r'COURSE_GRADING_CELL_TIMEOUT", "(\d+)"', (REPO_ROOT / "nbgrader_config.py").read_text())
    assert timeout and env["COURSE_GRADING_CELL_TIMEOUT"] == timeout.group(1)
    assert int(env["BATCH_SIZE"]) == capacity.Assumptions().grading_students_per_pod


def test_no_memory_request_or_limit_is_below_the_measured_peaks():
    measured = capacity.read_measurements()
    name, peak = measured.peak_notebook
    grading = container(one("grading/job.yaml"))["resources"]
    assert mib(grading["requests"]["memory"]) == capacity.grading_memory_request_mib(measured)
    assert mib(grading["requests"]["memory"]) >= max(peak, measured.grading_peak_mib)
    # the kernel's own MemoryError (graded) must come before the OOM killer (which fails the batch)
    assert mib(grading["limits"]["memory"]) >= kernel_limits.DEFAULT_MEMORY_MB + measured.grading_peak_mib
    formgrader = container(one("hub/formgrader.yaml", "Deployment"))["resources"]
    for where in ("requests", "limits"):
        assert mib(formgrader[where]["memory"]) >= peak, f"formgrader {where} below {name}'s peak"
