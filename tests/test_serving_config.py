"""Flags, models.config and batching parameters are read like tensorflow_model_server reads them."""

from __future__ import annotations

import pytest
from tensorflow_serving.config import model_server_config_pb2

from course_lib.errors import CourseError
from course_lib.serving.config import (
    BatchingOptions,
    parse_batching_parameters,
    parse_model_config_text,
    parse_server_flags,
)
from course_lib.serving.registry import aspired_versions, version_folders

LECTURE_CONFIG = """
model_config_list {
  config {
    name: 'mobilenet'
    base_path: '/models/mobilenet'
    model_platform: 'tensorflow'
    model_version_policy {
      specific {
        versions: 1
        versions: 2
      }
    }
    version_labels { key: 'stable' value: 1 }
    version_labels { key: 'canary' value: 2 }
  }
  config {
    name: 'resnet'
    base_path: '/models/resnet'
    model_platform: 'tensorflow'
  }
}
"""


def test_single_model_flags_use_tf_serving_defaults(tmp_path):
    options = parse_server_flags([f"--model_base_path={tmp_path}", "--model_name=mnist"])
    (model,) = options.model_config.model_config_list.config
    assert (model.name, model.base_path) == ("mnist", str(tmp_path))
    assert (options.grpc_port, options.rest_api_port, options.host) == (8500, 8501, "127.0.0.1")
    assert options.rest_api_timeout_in_ms == 30000
    assert options.file_system_poll_wait_seconds == 1.0
    assert options.batching is None


def test_space_separated_flags_and_host_are_accepted(tmp_path):
    options = parse_server_flags(
        ["--model_base_path", str(tmp_path), "--port", "9000", "--rest_api_port", "9001", "--host", "0.0.0.0"]
    )
    assert (options.grpc_port, options.rest_api_port, options.host) == (9000, 9001, "0.0.0.0")


def test_lecture_models_config_is_parsed_with_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(LECTURE_CONFIG)
    options = parse_server_flags([f"--model_config_file={path}"])
    mobilenet, resnet = options.model_config.model_config_list.config
    assert list(mobilenet.model_version_policy.specific.versions) == [1, 2]
    assert dict(mobilenet.version_labels) == {"stable": 1, "canary": 2}
    assert resnet.model_version_policy.WhichOneof("policy_choice") is None


def test_relative_base_paths_resolve_against_the_root_dir_flag(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: 'm' base_path: 'models/m' } }")
    options = parse_server_flags([f"--model_config_file={path}", f"--model_config_list_root_dir={tmp_path}"])
    assert options.model_config.model_config_list.config[0].base_path == str(tmp_path / "models" / "m")


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_config_list { config { name: 'm' base_pth: '/x' } }", "not a valid ModelServerConfig"),
        ("model_config_list { }", "no config entries"),
        ("model_config_list { config { base_path: '/x' } }", "needs a name"),
        ("model_config_list { config { name: 'm' } }", "has no base_path"),
        (
            "model_config_list { config { name: 'm' base_path: '/a' } config { name: 'm' base_path: '/b' } }",
            "appears twice",
        ),
        ("model_config_list { config { name: 'm' base_path: '/a' model_platform: 'pytorch' } }", "only 'tensorflow'"),
        (
            "model_config_list { config { name: 'm' base_path: '/a' model_version_policy { specific { } } } }",
            "specific policy with no versions",
        ),
    ],
)
def test_bad_models_config_is_rejected_with_a_reason(text, message):
    with pytest.raises(CourseError, match=message):
        parse_model_config_text(text, "models.config")


def test_batching_parameters_file_is_parsed_as_text_protobuf(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text(
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
        "num_batch_threads { value: 3 }\nmax_enqueued_batches { value: 7 }\n"
        "allowed_batch_sizes: 8\nallowed_batch_sizes: 64\n"
    )
    options = parse_server_flags(["--model_base_path=/m", "--enable_batching", f"--batching_parameters_file={path}"])
    assert options.batching == BatchingOptions(
        max_batch_size=64,
        batch_timeout_micros=2000,
        num_batch_threads=3,
        max_enqueued_batches=7,
        allowed_batch_sizes=(8, 64),
    )


def test_enable_batching_without_a_file_uses_tf_serving_defaults():
    batching = parse_server_flags(["--model_base_path=/m", "--enable_batching=true"]).batching
    assert batching is not None and batching.max_batch_size == 1000 and batching.batch_timeout_micros == 0
    assert parse_server_flags(["--model_base_path=/m", "--enable_batching=false"]).batching is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_batch_size { value: 0 }", "at least 1"),
        ("max_batch_size: 32", "not a valid BatchingParameters"),
        ("max_batch_size { value: 32 } allowed_batch_sizes: 8 allowed_batch_sizes: 16", "must match max_batch_size"),
        (
            "max_batch_size { value: 32 } allowed_batch_sizes: 16 allowed_batch_sizes: 8 allowed_batch_sizes: 32",
            "increasing",
        ),
    ],
)
def test_bad_batching_parameters_are_rejected(text, message):
    with pytest.raises(CourseError, match=message):
        parse_batching_parameters(text)


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "Both --model_base_path and --model_config_file are empty"),
        (["--model_base_path=/m", "--no_such_flag=1"], "Unknown flags: --no_such_flag=1"),
        (["--model_base_path=/m", "--batching_parameters_file=/b"], "without --enable_batching"),
        (["--model_base_path=/m", "--port=9000", "--rest_api_port=9000"], "must differ"),
        (["--model_base_path=/m", "--port=0", "--rest_api_port=0"], "nothing to serve"),
        (["--model_base_path=/m", "--port=70000"], "between 0 and 65535"),
        (["--model_config_file=/does/not/exist.config"], "Cannot read --model_config_file"),
    ],
)
def test_bad_flags_fail_with_what_to_fix(argv, message):
    with pytest.raises(CourseError, match=message):
        parse_server_flags(argv)


def test_tf_serving_only_flags_are_accepted_and_reported_as_ignored():
    options = parse_server_flags(
        ["--model_base_path=/m", "--rest_api_num_threads=8", "--num_load_threads=4", "--enable_model_warmup=false"]
    )
    assert options.ignored_flags == {"rest_api_num_threads": "8", "num_load_threads": "4"}
    assert not options.warmup.enabled  # honoured now (tests/test_serving_warmup.py)


# a generated proto class, built at import: pyright cannot see it
def _policy(text: str) -> model_server_config_pb2.ModelVersionPolicy:  # pyright: ignore[reportAttributeAccessIssue]
    config = parse_model_config_text(f"model_config_list {{ config {{ name: 'm' base_path: '/m' {text} }} }}")
    return config.model_config_list.config[0].model_version_policy


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("", {7}),
        ("model_version_policy { latest { num_versions: 2 } }", {5, 7}),
        ("model_version_policy { all { } }", {1, 5, 7}),
        ("model_version_policy { specific { versions: 1 versions: 9 } }", {1}),
    ],
)
def test_version_policy_picks_versions_from_those_on_disk(policy, expected):
    assert aspired_versions(_policy(policy), [1, 5, 7]) == expected


def test_only_numbered_folders_are_versions(tmp_path):
    for name in ("1", "00000123", "latest", ".staging-4"):
        (tmp_path / name).mkdir()
    (tmp_path / "2").write_text("a file, not a folder")
    assert sorted(version_folders(tmp_path)) == [1, 123]
    assert version_folders(tmp_path / "missing") == {}
