"""export_model writes TF Serving's layout and signatures, and the registry serves versions by policy."""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (Input, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from serving_fixtures.models import (
    CLASS_NAMES,
    build_classifier,
    build_regressor,
    expected_probabilities,
    export_classifier,
    regressor_weights,
    write_broken_version,
)
from tensorflow.core.example import example_pb2
from tensorflow_serving.config import model_server_config_pb2

from course_lib.errors import CourseError
from course_lib.serving.errors import ServingError
from course_lib.serving.export import CLASSIFY_SIGNATURE, REGRESS_SIGNATURE, export_model
from course_lib.serving.registry import AVAILABLE, END, ModelRegistry
from course_lib.serving.servable import ServableVersion, check_inputs


def test_export_writes_the_version_folder_layout(tmp_path):
    path = export_classifier(tmp_path / "clf", 3)
    assert path == tmp_path / "clf" / "3"
    assert (path / "saved_model.pb").is_file() and (path / "variables" / "variables.index").is_file()
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == ["3"]  # no staging folder left behind


def test_predict_signature_uses_the_model_names_and_runs_the_model(tmp_path):
    model = ServableVersion("clf", 1, export_classifier(tmp_path / "clf", 1))
    signature = model.signatures["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert list(signature.inputs) == ["x"] and list(signature.outputs) == ["probs"]
    assert signature.inputs["x"].shape == (None, 4) and signature.batchable
    x = np.array([[1, 2, 3, 4], [0, -1, 0.5, 2]], np.float32)
    outputs = model.run(signature, {"x": x}, ("probs",))
    np.testing.assert_allclose(outputs["probs"], expected_probabilities(x, 1.0), rtol=1e-5)


def test_classify_signature_parses_examples_and_labels_scores(tmp_path):
    model = ServableVersion("clf", 1, export_classifier(tmp_path / "clf", 1))
    signature = model.signatures[CLASSIFY_SIGNATURE]
    assert signature.method_name == "tensorflow/serving/classify"
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.extend([1, 2, 3, 4])
    serialized = np.array([example.SerializeToString()], object)
    outputs = model.run(signature, {"inputs": serialized}, ("classes", "scores"))
    assert outputs["classes"].tolist() == [[name.encode() for name in CLASS_NAMES]]
    np.testing.assert_allclose(outputs["scores"], expected_probabilities(np.array([[1, 2, 3, 4]]), 1.0), rtol=1e-5)


def test_regress_signature_is_added_for_a_single_number_output(tmp_path):
    path = export_model(build_regressor(), tmp_path / "reg", 1)
    model = ServableVersion("reg", 1, path)
    assert set(model.signatures) >= {"serving_default", REGRESS_SIGNATURE}
    assert CLASSIFY_SIGNATURE not in model.signatures
    assert list(model.signatures["serving_default"].inputs) == ["features"]
    example = example_pb2.Example()
    example.features.feature["features"].float_list.value.extend([1, 2, 3])
    outputs = model.run(
        model.signatures[REGRESS_SIGNATURE], {"inputs": np.array([example.SerializeToString()], object)}, ("outputs",)
    )
    kernel, bias = regressor_weights()
    np.testing.assert_allclose(outputs["outputs"], (np.array([[1, 2, 3]], np.float32) @ kernel + bias)[:, 0], rtol=1e-6)


def test_export_refuses_to_overwrite_unless_asked(tmp_path):
    export_classifier(tmp_path / "clf", 1)
    with pytest.raises(CourseError, match="already exists"):
        export_classifier(tmp_path / "clf", 1)
    export_model(build_classifier(5.0), tmp_path / "clf", 1, overwrite=True)
    model = ServableVersion("clf", 1, tmp_path / "clf" / "1")
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(
        model.run(model.signatures["serving_default"], {"x": x}, ("probs",))["probs"],
        expected_probabilities(x, 5.0),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"version": -1}, "whole number >= 0"),
        ({"version": "1"}, "whole number >= 0"),
        ({"version": 1, "regress": True}, "Cannot add a regress signature"),
        ({"version": 1, "class_names": ["only", "two"]}, "class_names has 2 names"),
    ],
)
def test_export_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(CourseError, match=message):
        export_model(build_classifier(), tmp_path / "clf", **kwargs)


def test_export_needs_a_model_with_known_inputs(tmp_path):
    import keras

    with pytest.raises(CourseError, match="no known inputs"):
        export_model(keras.Sequential([keras.layers.Dense(2)]), tmp_path / "m", 1)


def test_inputs_are_checked_against_the_signature(tmp_path):
    signature = ServableVersion("clf", 1, export_classifier(tmp_path / "clf", 1)).signatures["serving_default"]
    with pytest.raises(ServingError, match=r"has shape \[2,3\] but signature 'serving_default' expects \[-1,4\]"):
        check_inputs(signature, {"x": np.zeros((2, 3), np.float32)})
    with pytest.raises(ServingError, match="has dtype double but signature 'serving_default' expects float"):
        check_inputs(signature, {"x": np.zeros((2, 4), np.float64)})
    with pytest.raises(ServingError, match="input tensor alias not found in signature: y"):
        check_inputs(signature, {"y": np.zeros((2, 4), np.float32)})
    with pytest.raises(ServingError, match=r"Missing but required: \{x\}"):
        check_inputs(signature, {})


def _registry(base, policy: str = "", labels: str = "") -> ModelRegistry:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(f"model_config_list {{ config {{ name: 'clf' base_path: '{base}' {policy} {labels} }} }}", config)
    return ModelRegistry(config)


def test_registry_serves_the_latest_version_and_keeps_it_until_a_new_one_is_available(tmp_path):
    base = tmp_path / "clf"
    export_classifier(base, 1)
    registry = _registry(base)
    registry.poll_once()
    assert registry.resolve("clf").version == 1
    export_classifier(base, 2)
    registry.poll_once()
    assert registry.resolve("clf").version == 2
    states = {s.version: s.state for s in registry.version_statuses("clf")}
    assert states == {2: AVAILABLE, 1: END}
    with pytest.raises(ServingError, match=r"Servable not found for request: Specific\(clf, 1\)"):
        registry.resolve("clf", version=1)


def test_registry_specific_policy_and_labels(tmp_path):
    base = tmp_path / "clf"
    for version in (1, 2, 3):
        export_classifier(base, version)
    registry = _registry(
        base,
        "model_version_policy { specific { versions: 1 versions: 2 } }",
        "version_labels { key: 'stable' value: 1 } version_labels { key: 'canary' value: 2 }",
    )
    registry.poll_once()
    assert registry.resolve("clf").version == 2
    assert registry.resolve("clf", label="stable").version == 1
    assert registry.resolve("clf", label="canary").version == 2
    assert [s.version for s in registry.version_statuses("clf")] == [2, 1]
    with pytest.raises(ServingError, match="Unrecognized servable version label: beta") as info:
        registry.resolve("clf", label="beta")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ServingError, match="Could not find version 3 of model clf"):
        registry.version_statuses("clf", version=3)


def test_a_broken_version_is_reported_and_the_previous_one_keeps_serving(tmp_path):
    base = tmp_path / "clf"
    export_classifier(base, 1)
    registry = _registry(base)
    registry.poll_once()
    write_broken_version(base, 2)
    registry.poll_once()
    registry.poll_once()  # a failed version is not retried while its folder is unchanged
    assert registry.resolve("clf").version == 1
    statuses = {s.version: s for s in registry.version_statuses("clf")}
    assert statuses[1].state == AVAILABLE
    assert statuses[2].state == END and statuses[2].error_code != "OK" and statuses[2].error_message


def test_a_removed_version_is_unloaded_and_the_older_one_comes_back(tmp_path):
    import shutil

    base = tmp_path / "clf"
    export_classifier(base, 1)
    export_classifier(base, 2)
    registry = _registry(base)
    registry.poll_once()
    assert registry.resolve("clf").version == 2
    shutil.rmtree(base / "2")
    registry.poll_once()
    assert registry.resolve("clf").version == 1
    assert {s.version: s.state for s in registry.version_statuses("clf")} == {2: END, 1: AVAILABLE}


def test_unknown_models_are_not_found(tmp_path):
    registry = _registry(tmp_path / "empty")
    registry.poll_once()
    with pytest.raises(ServingError, match=r"Latest\(clf\)") as info:
        registry.resolve("clf")
    assert info.value.http_status == 404
    with pytest.raises(ServingError, match="Could not find any versions of model clf"):
        registry.version_statuses("clf")


def test_a_changed_models_config_file_is_applied(tmp_path):
    from course_lib.serving.config import load_model_config_file
    from course_lib.serving.server import ConfigFileWatcher

    export_classifier(tmp_path / "clf", 1)
    config_file = tmp_path / "models.config"
    config_file.write_text(f"model_config_list {{ config {{ name: 'clf' base_path: '{tmp_path / 'clf'}' }} }}")
    registry = ModelRegistry(load_model_config_file(config_file))
    registry.poll_once()
    watcher = ConfigFileWatcher(str(config_file), registry)
    watcher()  # unchanged: nothing happens
    assert registry.model_names() == ["clf"]
    config_file.write_text(f"model_config_list {{ config {{ name: 'again' base_path: '{tmp_path / 'clf'}' }} }}")
    watcher()
    assert registry.model_names() == ["again"] and registry.resolve("again").version == 1
    with pytest.raises(ServingError, match=r"Latest\(clf\)"):
        registry.resolve("clf")
    export_classifier(tmp_path / "elsewhere", 2)  # the same name, moved to another folder
    config_file.write_text(f"model_config_list {{ config {{ name: 'again' base_path: '{tmp_path / 'elsewhere'}' }} }}")
    watcher()
    assert registry.resolve("again").version == 2
    assert [s.version for s in registry.version_statuses("again")] == [2]
