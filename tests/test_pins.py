"""One set of pins: requirements.txt, environment.yml and binder/ must never drift apart."""

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)")


def pins_in_lines(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def requirements_pins() -> dict[str, str]:
    return pins_in_lines((ROOT / "requirements.txt").read_text().splitlines())


def conda_pip_pins(path: Path) -> dict[str, str]:
    spec = yaml.safe_load(path.read_text())
    pip_section = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict) and "pip" in item)
    return pins_in_lines(pip_section)


def test_every_direct_dependency_is_pinned_exactly():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    unpinned = [line for line in lines if line and not PIN.match(line)]
    assert unpinned == [], f"pin these with ==: {unpinned}"
    assert requirements_pins()["tensorflow"] == "2.21.0"


def test_environment_yml_uses_the_same_pins():
    assert conda_pip_pins(ROOT / "environment.yml") == requirements_pins()


def test_binder_environment_uses_the_same_pins():
    assert conda_pip_pins(ROOT / "binder" / "environment.yml") == requirements_pins()


def test_lock_file_agrees_with_the_direct_pins():
    locked = pins_in_lines((ROOT / "constraints.txt").read_text().splitlines())
    disagree = {
        name: (version, locked.get(name))
        for name, version in requirements_pins().items()
        if locked.get(name) != version
    }
    assert disagree == {}, f"requirements.txt vs constraints.txt (run `make lock`): {disagree}"


def test_pin_drift_is_detected(tmp_path):
    drifted = tmp_path / "environment.yml"
    drifted.write_text((ROOT / "environment.yml").read_text().replace("tensorflow==2.21.0", "tensorflow==2.20.0"))
    assert conda_pip_pins(drifted) != requirements_pins()


def test_dockerfile_builds_on_the_pinned_tensorflow_and_installs_the_pins():
    dockerfile = (ROOT / "Dockerfile").read_text()
    tag = re.search(r"^FROM tensorflow/tensorflow:([0-9.]+)-gpu$", dockerfile, re.MULTILINE)
    assert tag and tag.group(1) == requirements_pins()["tensorflow"]
    assert "pip install -r requirements.txt -c constraints.txt" in dockerfile
    # Not into the base image's own Python: pip cannot replace its apt-installed packages (blinker 1.4).
    assert "-m venv --without-pip --system-site-packages /opt/course-venv" in dockerfile
    assert re.search(r"^\s+PATH=/opt/course-venv/bin:\$PATH$", dockerfile, re.MULTILINE)


def test_binder_postbuild_installs_the_course_without_other_pins():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post_build
    assert "--name tf-course" in post_build and "course_lib prefetch" in post_build
    assert not PIN.search(post_build), "pins belong in requirements.txt, not in postBuild"


def test_gpu_ci_installs_the_cuda_build_of_the_pinned_tensorflow():
    workflow = (ROOT / ".github" / "workflows" / "gpu-notebooks.yml").read_text()
    assert "tensorflow[and-cuda]==$(grep -oP '^tensorflow==\\K[0-9.]+' requirements.txt)" in workflow
    assert "make gpu-report" in workflow


def test_readme_binder_badge_opens_the_first_student_notebook():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/[^/\s]+/[^/\s]+/HEAD\?urlpath=lab/tree/([^)\s]+)\)", readme)
    assert badge, "README needs the Binder launch badge"
    # work/ is filled from notebooks/ at launch (binder/start): the badge opens the student's own copy.
    opened = badge.group(1)
    assert opened.startswith("work/01-"), opened
    assert (ROOT / "notebooks" / opened.removeprefix("work/")).is_file(), opened
    assert "course_lib workspace" in (ROOT / "binder" / "start").read_text()
    for script in ("postBuild", "start"):  # repo2docker runs them as programs (start wraps the server)
        assert os.access(ROOT / "binder" / script, os.X_OK), f"chmod +x binder/{script}"
