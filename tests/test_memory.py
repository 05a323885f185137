"""course_lib.memory: parameter and activation bytes against facts and hand-computed small models."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_lib import CourseError, devices, memory
from course_lib.memory import cli as memory_cli

F32 = 4  # bytes per float32


@pytest.fixture(scope="module")
def resnet50():
    # Keras documents weights=None (random initialisation); pyright infers `str` from the default "imagenet"
    return keras.applications.ResNet50(weights=None)  # pyright: ignore[reportArgumentType]


def mlp():
    """784 -> 32 -> 10: activations at batch 4 are 4*32*4 = 512 and 4*10*4 = 160 bytes."""
    return keras.Sequential([keras.Input((784,)), keras.layers.Dense(32), keras.layers.Dense(10)], name="mlp")


def diamond():
    """Input(8) feeds two Dense(16) branches that are added, then Dense(4)."""
    x = keras.Input((8,))
    a = keras.layers.Dense(16, name="a")(x)
    b = keras.layers.Dense(16, name="b")(x)
    added = keras.layers.Add(name="add")([a, b])
    return keras.Model(x, keras.layers.Dense(4, name="head")(added), name="diamond")


def test_resnet50_parameter_facts(resnet50):
    estimate = memory.estimate_memory(resnet50, 1, (224, 224, 3))
    assert estimate.param_count == 25_636_712
    assert estimate.param_bytes == 102_546_848
    assert estimate.param_bytes_by_dtype == {"float32": 102_546_848}
    # BatchNorm moving statistics are weights but get no gradient and no optimizer slots.
    assert estimate.trainable_param_count < estimate.param_count
    assert estimate.gradient_bytes == estimate.trainable_param_count * F32
    assert memory.param_bytes_for_dtype(resnet50, "int8") == 25_636_712
    assert memory.param_bytes_for_dtype(resnet50, "float16") == 2 * 25_636_712


def test_resnet50_activations_grow_with_the_batch_while_the_lecture_rule_barely_moves(resnet50):
    one = memory.estimate_memory(resnet50, 1)
    many = memory.estimate_memory(resnet50, 32)
    assert many.activations_total_bytes == 32 * one.activations_total_bytes
    assert many.activations_peak_inference_bytes == 32 * one.activations_peak_inference_bytes
    assert one.activations_peak_inference_bytes < one.activations_total_bytes
    lecture_one = memory.lecture_rule(resnet50, 1, (224, 224, 3))
    lecture_many = memory.lecture_rule(resnet50, 32, (224, 224, 3))
    assert lecture_many["activation_mb"] == lecture_one["activation_mb"]


def test_lecture_rule_is_the_lecture_formula(resnet50):
    rule = memory.lecture_rule(resnet50, 32, (224, 224, 3))
    model_mb = 25_636_712 * 4 / 1024**2
    input_mb = 224 * 224 * 3 * 32 * 4 / 1024**2
    assert rule["model_mb"] == pytest.approx(model_mb)
    assert rule["input_mb"] == pytest.approx(input_mb)
    assert rule["activation_mb"] == pytest.approx(2.5 * model_mb)
    assert rule["total_mb"] == pytest.approx(3.5 * model_mb + input_mb)
    assert rule["recommended_gpu_gb"] == pytest.approx((3.5 * model_mb + input_mb) / 1024 * 1.5)


def test_dense_on_784_inputs_has_7850_parameters():
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    estimate = memory.estimate_memory(model, 1, (784,), optimizer="sgd")
    assert estimate.param_count == 7_850
    assert estimate.param_bytes == 7_850 * F32
    assert estimate.optimizer_slot_bytes == 0


def test_sequential_activations_by_hand():
    estimate = memory.estimate_memory(mlp(), 4, (784,))
    assert estimate.input_bytes == 4 * 784 * F32
    assert estimate.activations_total_bytes == 4 * 32 * F32 + 4 * 10 * F32
    # Peak: the first Dense needs its input and its output alive at once.
    assert estimate.activations_peak_inference_bytes == 4 * 784 * F32 + 4 * 32 * F32
    assert estimate.inference_bytes == estimate.param_bytes + estimate.activations_peak_inference_bytes
    rows = memory.activation_bytes_by_layer(mlp(), 4)
    assert [(r.layer_type, r.output_shapes, r.output_bytes) for r in rows] == [
        ("Dense", ((4, 32),), 512),
        ("Dense", ((4, 10),), 160),
    ]


def test_branches_keep_both_inputs_of_add_alive():
    estimate = memory.estimate_memory(diamond(), 2)
    i, a, b, added, head = 2 * 8 * F32, 2 * 16 * F32, 2 * 16 * F32, 2 * 16 * F32, 2 * 4 * F32
    assert estimate.activations_total_bytes == a + b + added + head
    # Running b still needs the input (for nothing else now), a (for add) and b's output;
    # running add needs a, b and its own output: the larger of the two is the peak.
    assert estimate.activations_peak_inference_bytes == max(i + a + b, a + b + added)


def test_nested_models_are_walked_inside():
    inner = keras.Sequential([keras.layers.Dense(16, name="wide"), keras.layers.Dense(4, name="narrow")], name="inner")
    x = keras.Input((8,))
    model = keras.Model(x, keras.layers.Dense(2, name="out")(inner(x)))
    estimate = memory.estimate_memory(model, 2)
    wide, narrow, out, i = 2 * 16 * F32, 2 * 4 * F32, 2 * 2 * F32, 2 * 8 * F32
    assert estimate.activations_total_bytes == wide + narrow + out
    assert estimate.activations_peak_inference_bytes == i + wide
    names = [r.name for r in memory.activation_bytes_by_layer(model, 2)]
    assert names == ["inner/wide", "inner/narrow", "inner", "out"]


def test_multiple_outputs_stay_alive_to_the_end():
    x = keras.Input((8,))
    model = keras.Model(x, [keras.layers.Dense(4)(x), keras.layers.Dense(6)(x)])
    estimate = memory.estimate_memory(model, 3)
    i, first, second = 3 * 8 * F32, 3 * 4 * F32, 3 * 6 * F32
    assert estimate.activations_total_bytes == first + second
    assert estimate.activations_peak_inference_bytes == i + first + second


def test_an_operation_with_two_outputs_counts_both():
    x = keras.Input((8,))
    halves = keras.ops.split(x, 2, axis=-1)
    assert halves is not None
    left, right = halves
    model = keras.Model(x, keras.layers.Add()([left, right]))
    rows = memory.activation_bytes_by_layer(model, 2)
    assert rows[0].output_shapes == ((2, 4), (2, 4))
    assert rows[0].output_bytes == 2 * (2 * 4 * F32)
    estimate = memory.estimate_memory(model, 2)
    assert estimate.activations_total_bytes == 2 * (2 * 4 * F32) + 2 * 4 * F32
    assert estimate.activations_peak_inference_bytes == 2 * 8 * F32 + 2 * (2 * 4 * F32)


def test_target_dtypes_scale_weights_and_activations():
    base = memory.estimate_memory(mlp(), 4)
    half = memory.estimate_memory(mlp(), 4, weights_dtype="float16", activation_dtype="float16")
    int8 = memory.estimate_memory(mlp(), 4, weights_dtype="int8")
    assert half.param_bytes == base.param_bytes // 2
    assert half.param_bytes_by_dtype == {"float16": base.param_bytes // 2}
    assert half.activations_total_bytes == base.activations_total_bytes // 2
    assert int8.param_bytes == base.param_count
    assert int8.activations_total_bytes == base.activations_total_bytes


def test_mixed_precision_layers_declare_float16_activations():
    policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = mlp()
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
    estimate = memory.estimate_memory(model, 4)
    assert estimate.param_bytes_by_dtype == {"float32": memory.estimate_memory(mlp(), 4).param_bytes}
    assert estimate.activations_total_bytes == (4 * 32 + 4 * 10) * 2


@pytest.mark.parametrize(
    ("optimizer", "copies"),
    [
        ("adam", 2),
        ("sgd", 0),
        ("sgd-momentum", 1),
        (keras.optimizers.SGD(momentum=0.9), 1),
        (keras.optimizers.SGD(), 0),
        (keras.optimizers.Adam(), 2),
    ],
)
def test_optimizer_slots_are_copies_of_the_trainable_weights(optimizer, copies):
    estimate = memory.estimate_memory(mlp(), 4, optimizer=optimizer)
    assert estimate.gradient_bytes == estimate.param_bytes
    assert estimate.optimizer_slot_bytes == copies * estimate.param_bytes
    assert estimate.training_bytes == (
        estimate.param_bytes * (2 + copies) + estimate.input_bytes + estimate.activations_total_bytes
    )


def test_recommendation_adds_headroom_and_runtime_overhead_and_picks_gpus():
    estimate = memory.estimate_memory(mlp(), 4, headroom=1.5, runtime_overhead_bytes=1000)
    needed = math.ceil(estimate.inference_bytes * 1.5) + 1000
    assert estimate.recommended_inference_bytes == needed
    assert estimate.recommended_training_bytes == math.ceil(estimate.training_bytes * 1.5) + 1000
    gpus = {"big": 2 * needed, "too small": needed - 1, "exact": needed}
    assert memory.gpu_for(estimate, gpus) == ["exact", "big"]
    assert memory.gpu_for(estimate, {"exact": needed}, training=True) == []
    assert memory.gpu_for(memory.estimate_memory(mlp(), 4)) == list(memory.COMMON_GPUS)


def test_rows_and_summary_are_in_mib():
    estimate = memory.estimate_memory(mlp(), 4)
    rows = dict(estimate.to_rows())
    assert rows["parameters"] == pytest.approx(estimate.param_bytes / 1024**2)
    assert rows["training total"] == pytest.approx(estimate.training_bytes / 1024**2)
    assert rows["optimizer slots (adam)"] == pytest.approx(2 * estimate.param_bytes / 1024**2)
    text = estimate.summary()
    assert "mlp at batch size 4" in text and "25,450 parameters" in text and "MiB" in text


def test_estimate_rejects_bad_input():
    with pytest.raises(CourseError, match="batch_size must be a positive integer"):
        memory.estimate_memory(mlp(), 0)
    with pytest.raises(CourseError, match="unknown optimizer"):
        memory.estimate_memory(mlp(), 1, optimizer="adadelta-plus")
    with pytest.raises(CourseError, match="headroom"):
        memory.estimate_memory(mlp(), 1, headroom=0.5)
    with pytest.raises(CourseError, match="unknown dtype"):
        memory.estimate_memory(mlp(), 1, weights_dtype="float7")
    with pytest.raises(CourseError) as caught:
        memory.estimate_memory(mlp(), 1, input_shape=(28, 28))
    assert "expects (784,)" in str(caught.value) and "got (28, 28)" in str(caught.value)


def test_unknown_dimensions_and_subclassed_models_get_a_clear_error():
    x = keras.Input((None, 3))
    variable_length = keras.Model(x, keras.layers.Dense(2)(x))
    with pytest.raises(CourseError, match="unknown dimensions besides the batch"):
        memory.estimate_memory(variable_length, 2)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(CourseError, match="no layer graph"):
        memory.estimate_memory(model, 2)


def test_measured_peak_is_none_with_a_note_without_the_device(capsys):
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU; the no-device path needs a machine without one")
    assert memory.measured_peak_bytes(lambda: tf.ones((4, 4))) is None
    assert "no device GPU:0 here" in capsys.readouterr().out
    assert memory.measured_peak_bytes(lambda: tf.ones((4, 4)), verbose=False) is None
    assert capsys.readouterr().out == ""


def on_cpu_peak_method() -> str:
    """How measure_peak must measure CPU:0 here: the allocator with oneDNN on, else the process's RSS."""
    from course_lib.environment import onednn_enabled

    return "allocator" if onednn_enabled() else "process-rss"


@pytest.mark.cpu_sensitive
def test_measured_peak_counts_what_the_function_allocates():
    device = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"
    megabyte_of_floats = (256, 1024)

    def allocate():
        return tf.ones(megabyte_of_floats) * 2.0

    allocate()
    grown = memory.measured_peak_bytes(allocate, device=device)
    assert grown is not None and grown >= 1024**2
    absolute = memory.measured_peak_bytes(allocate, device=device, include_resident=True)
    assert absolute is not None and absolute >= grown


@pytest.mark.cpu_sensitive
def test_cpu_memory_is_measured_by_the_allocator_with_onednn_and_by_rss_without(capsys):
    measurement = memory.measure_peak(lambda: tf.ones((512, 1024)) + 1.0, "CPU:0")
    assert measurement.method == on_cpu_peak_method(), measurement
    assert measurement.bytes is not None, measurement
    assert measurement.bytes >= 2 * 1024**2  # two 2 MiB tensors alive at once, whichever counter saw them
    assert ("resident memory" in measurement.note) == (measurement.method == "process-rss")
    memory.measured_peak_bytes(lambda: tf.ones((512, 1024)), "CPU:0")
    said = capsys.readouterr().out
    assert ("measured as process-rss" in said) == (measurement.method == "process-rss")


@pytest.mark.cpu_sensitive
def test_without_onednn_the_cpu_is_measured_from_the_process_rss():
    """The student's AVX2 laptop, forced here whatever this machine's CPU: oneDNN off, no allocator stats."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "course_lib.memory", "--measure", "--batch-sizes", "64"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("64 |"))
    measured_fn, measured_eager = (float(cell) for cell in row.split(" | ")[-2:])  # "n/a" would fail here
    assert measured_eager >= measured_fn > 0
    assert "measured as process-rss on CPU:0" in result.stdout


def test_device_names_are_normalised():
    assert devices.device_name("/device:GPU:1") == "GPU:1"
    assert devices.device_name("gpu") == "GPU:0"
    assert devices.device_name("/physical_device:CPU:0") == "CPU:0"


def test_main_prints_estimates_and_the_lecture_rule(capsys):
    assert memory_cli.main(["--model", "tiny-cnn", "--batch-sizes", "1,4", "--measure"]) == 0
    out = capsys.readouterr().out
    assert "lecture total MiB" in out and "measured fn MiB" in out
    assert "tiny_cnn at batch size 4" in out


def mlp_inference_bytes(batch_size: int) -> int:
    """mlp() by hand: 25,450 float32 weights, then input and first Dense output alive at once."""
    return math.ceil((25_450 * F32 + batch_size * (784 + 32) * F32) * memory.DEFAULT_HEADROOM)


def test_batch_sizes_that_do_not_fit_are_left_out_with_a_warning(capsys):
    available = mlp_inference_bytes(100)  # batch 100 fits exactly; 1000 does not
    assert memory.fit_batch_sizes(mlp(), (1000, 1, 100, 1), (784,), available_bytes=available) == (1, 100)
    out = capsys.readouterr().out
    assert "WARNING: batch sizes [1000] left out" in out
    assert f"{mlp_inference_bytes(1000) / memory.MIB:,.1f} MiB" in out


def test_batch_sizes_that_all_fit_are_kept_and_reported(capsys):
    assert memory.fit_batch_sizes(mlp(), (1, 8), available_bytes=memory.GIB) == (1, 8)
    assert "batch sizes [1, 8] fit: mlp needs at most" in capsys.readouterr().out


def test_the_smallest_batch_is_kept_even_when_nothing_fits(capsys):
    assert memory.fit_batch_sizes(mlp(), (4, 2), available_bytes=1000) == (2,)
    out = capsys.readouterr().out
    assert "left out" in out and "even batch 2 needs" in out and "kernel may be killed" in out


def test_fit_batch_sizes_rejects_bad_input():
    with pytest.raises(CourseError, match="batch_sizes is empty"):
        memory.fit_batch_sizes(mlp(), (), available_bytes=memory.GIB)
    with pytest.raises(CourseError, match="positive integer"):
        memory.fit_batch_sizes(mlp(), (1, 0), available_bytes=memory.GIB)


def test_fit_batch_sizes_defaults_to_the_memory_this_process_has_left(monkeypatch, capsys):
    from course_lib import cgroups

    left = cgroups.memory_left_bytes()
    assert 0 < left <= cgroups.psutil.virtual_memory().total
    monkeypatch.setattr(cgroups, "memory_left_bytes", lambda: mlp_inference_bytes(8))
    assert memory.fit_batch_sizes(mlp(), (8, 9), (784,)) == (8,)
    assert f"{mlp_inference_bytes(8) / memory.MIB:,.0f} MiB left" in capsys.readouterr().out


def test_eager_inference_keeps_every_layer_output():
    estimate = memory.estimate_memory(mlp(), 4, (784,))
    assert estimate.eager_inference_bytes == estimate.param_bytes + 4 * 784 * F32 + 4 * 32 * F32 + 4 * 10 * F32
    eager_needs = math.ceil(estimate.eager_inference_bytes * memory.DEFAULT_HEADROOM)
    assert memory.fit_batch_sizes(mlp(), (4,), (784,), available_bytes=eager_needs, eager=True) == (4,)


def elementwise_chain():
    """Six elementwise layers on 65,536 features: at batch 64 each output is 16 MiB, and cheap to compute.

    Cheap ops keep the signal (16 MiB per tensor) far above what the process's RSS adds around it
    (malloc's per-thread arenas, a matmul's packing buffers), so the claim holds with either counter.
    """
    x = keras.Input((65536,))
    y = x
    for i in range(6):
        y = keras.layers.Activation("tanh" if i % 2 else "relu", name=f"act{i}")(y)
    return keras.Model(x, y, name="elementwise")


@pytest.mark.cpu_sensitive
def test_an_eager_call_holds_every_layer_output_and_a_compiled_one_does_not():
    """What eager_inference_bytes models, measured on CPU:0 (allocator with oneDNN, process RSS without)."""
    model, batch = elementwise_chain(), tf.zeros((64, 65536))
    estimate = memory.estimate_memory(model, 64)
    assert estimate.activations_total_bytes == 6 * 16 * memory.MIB
    compiled = tf.function(lambda x: model(x, training=False))
    model(batch, training=False)  # warm up the eager call
    compiled(batch)  # and the compiled one
    eager = memory.measure_peak(lambda: model(batch, training=False), "CPU:0")
    compiled_peak = memory.measure_peak(lambda: compiled(batch), "CPU:0")
    assert eager.method == compiled_peak.method == on_cpu_peak_method()
    assert eager.bytes is not None and compiled_peak.bytes is not None, (eager, compiled_peak)
    assert eager.bytes >= 0.9 * estimate.activations_total_bytes  # all six 16 MiB outputs at once
    assert compiled_peak.bytes < 0.5 * estimate.activations_total_bytes  # one or two at a time
