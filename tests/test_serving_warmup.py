"""Warm-up records (assets.extra/tf_serving_warmup_requests) replayed before a version is served.

A model that counts its own calls shows how many warm-up calls ran before the first real request:
records x --num_request_iterations_for_warmup, one call on zeros without records, none with
--enable_model_warmup=false. A version whose records it cannot answer is not served, as in TF Serving.
"""

# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import numpy as np
import pytest
import requests
import tensorflow as tf

from course_lib.serving import export_model, serve
from course_lib.serving.warmup import write_warmup_requests

pytestmark = pytest.mark.slow  # model servers as subprocesses


class CallCounter(tf.Module):
    def __init__(self):
        super().__init__()
        self.calls = tf.Variable(tf.zeros([], tf.int64))

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(self, x):
        self.calls.assign_add(1)
        return {"calls": tf.fill([tf.shape(x)[0]], self.calls.read_value()), "y": x * 2.0}


def export_counter(base, version: int, warmup=None):
    module = CallCounter()
    target = base / str(version)
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
    if warmup is not None:
        write_warmup_requests(target, warmup)
    return target


def first_call_count(tmp_path, *flags, warmup=None) -> int:
    export_counter(tmp_path / "counter", 1, warmup)
    with serve("counter", tmp_path / "counter", use_real_server=False, log_path=tmp_path / "server.log",
               extra_flags=list(flags), timeout=180) as server:  # fmt: skip
        answer = requests.post(
            f"{server.rest_url}/v1/models/counter:predict", json={"instances": [[1.0, 2.0]]}, timeout=30
        )
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"][0]["calls"]


TWO_RECORDS = [{"x": np.zeros((1, 2), np.float32)}, {"x": np.ones((3, 2), np.float32)}]


def test_each_record_runs_the_asked_number_of_times_before_the_first_request(tmp_path):
    assert first_call_count(tmp_path, "--num_request_iterations_for_warmup=3", warmup=TWO_RECORDS) == 2 * 3 + 1
    assert "Number of warmup records read: 2" in (tmp_path / "server.log").read_text()


@pytest.mark.parametrize(("flags", "expected"), [((), 2), (("--enable_model_warmup=false",), 1)])
def test_without_records_one_call_on_zeros_and_none_when_disabled(tmp_path, flags, expected):
    assert first_call_count(tmp_path, *flags) == expected


def test_a_version_that_fails_its_warm_up_is_not_served(tmp_path):
    base = tmp_path / "counter"
    export_counter(base, 1, TWO_RECORDS)
    export_counter(base, 2, [{"x": np.zeros((1, 3), np.float32)}])  # the wrong width: the load must fail
    config = tmp_path / "models.config"
    config.write_text(f"""model_config_list {{ config {{ name: 'counter' base_path: '{base}'
      model_platform: 'tensorflow' model_version_policy {{ specific {{ versions: 1 versions: 2 }} }} }} }}""")
    with serve(
        model_config_file=config, use_real_server=False, log_path=tmp_path / "server.log", timeout=180
    ) as server:
        status = requests.get(f"{server.rest_url}/v1/models/counter", timeout=30).json()["model_version_status"]
    states = {s["version"]: (s["state"], s["status"]["error_message"]) for s in status}
    assert states["1"][0] == "AVAILABLE"
    assert states["2"][0] == "END" and "expects" in states["2"][1]


def test_export_model_writes_records_the_server_replays(tmp_path):
    model = tf.keras.Sequential([tf.keras.Input((2,), name="x"), tf.keras.layers.Dense(1)])
    target = export_model(model, tmp_path / "m", 1, warmup_inputs=TWO_RECORDS)
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(target / "assets.extra" / "tf_serving_warmup_requests")))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert [tuple(tf.make_ndarray(log.predict_log.request.inputs["x"]).shape) for log in logs] == [(1, 2), (3, 2)]
