"""course_lib.bench: structure and consistency of the measurements, and its error messages.

No assertion here depends on how fast the machine is: speed is what the benchmark records.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_lib import CourseError, bench

# Timings and XLA on the CPU: make test runs these again with oneDNN off (CPUs without AVX-512).
pytestmark = pytest.mark.cpu_sensitive


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)], name="small"
    )


def test_time_callable_runs_warmup_plus_repeats_and_returns_one_latency_per_repeat():
    calls = []
    latencies = bench.time_callable(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7
    assert len(latencies) == 5
    assert all(isinstance(x, float) and x >= 0 for x in latencies)


def test_time_callable_waits_for_tensor_results(monkeypatch):
    seen = []
    original = bench.materialize

    def spy(result):
        converted = original(result)
        seen.append(type(converted))
        return converted

    monkeypatch.setattr(bench, "materialize", spy)
    bench.time_callable(lambda: tf.ones((2, 2)) * 3.0, warmup=1, repeats=2)
    assert seen == [np.ndarray, np.ndarray, np.ndarray]


def test_materialize_converts_nested_tensors_and_leaves_other_values():
    result = bench.materialize({"a": tf.constant([1.0, 2.0]), "b": [tf.constant(3), "text"]})
    assert isinstance(result["a"], np.ndarray) and result["a"].tolist() == [1.0, 2.0]
    assert isinstance(result["b"][0], (np.ndarray, np.generic)) and int(result["b"][0]) == 3
    assert result["b"][1] == "text"


@pytest.mark.parametrize(("warmup", "repeats"), [(0, 0), (1, -3), (-1, 2), (1, 2.5), (1, True)])
def test_time_callable_rejects_bad_counts(warmup, repeats):
    with pytest.raises(CourseError, match=r"repeats|warmup"):
        bench.time_callable(lambda: None, warmup=warmup, repeats=repeats)


def test_percentile_interpolates_between_samples():
    assert bench.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert bench.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 100) == 5.0
    assert bench.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0) == 1.0
    assert bench.percentile([10.0, 20.0], 95) == pytest.approx(19.5)


def test_percentile_and_summarize_reject_empty_or_out_of_range():
    with pytest.raises(CourseError, match="no samples"):
        bench.percentile([], 50)
    with pytest.raises(CourseError, match="between 0 and 100"):
        bench.percentile([1.0], 150)
    with pytest.raises(CourseError, match="empty"):
        bench.summarize([])


def test_summarize_orders_percentiles_and_averages():
    samples = [5.0, 1.0, 9.0, 3.0, 7.0, 100.0]
    summary = bench.summarize(samples)
    assert summary.count == 6
    assert summary.min_ms <= summary.p50_ms <= summary.p95_ms <= summary.max_ms
    assert summary.mean_ms == pytest.approx(sum(samples) / 6)
    assert (summary.min_ms, summary.max_ms) == (1.0, 100.0)


def test_benchmark_returns_one_consistent_row_per_method_and_batch(small_model):
    rows = bench.benchmark(small_model, (4,), batch_sizes=(1, 3), methods=bench.METHODS, warmup=1, repeats=3)
    assert [(r.method, r.batch_size) for r in rows] == [(m, b) for b in (1, 3) for m in bench.METHODS]
    for row in rows:
        assert row.repeats == 3
        assert 0 < row.p50_ms <= row.p95_ms
        assert row.mean_ms > 0
        assert row.throughput == pytest.approx(row.batch_size / (row.p50_ms / 1000))
        assert row.first_call_ms is not None and row.first_call_ms > 0


def test_benchmark_without_warmup_times_the_first_call_as_a_repeat(small_model):
    rows = bench.benchmark(small_model, (4,), batch_sizes=(2,), methods=("call",), warmup=0, repeats=2)
    assert len(rows) == 1
    assert rows[0].repeats == 2
    assert rows[0].first_call_ms is None


@pytest.mark.parametrize("method", bench.METHODS)
def test_every_runner_computes_the_model_output(small_model, method):
    batch = np.random.default_rng(1).random((5, 4)).astype(np.float32)
    expected = small_model(batch, training=False).numpy()
    result = bench.materialize(bench.make_runner(small_model, method)(batch))
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_sizes": ()}, "batch_sizes is empty"),
        ({"batch_sizes": (1, 0)}, "positive integers"),
        ({"methods": ("call", "onnx")}, "unknown benchmark method"),
        ({"methods": ()}, "methods is empty"),
        ({"repeats": 0}, "repeats must be a positive integer"),
        ({"warmup": -1}, "warmup must be"),
        ({"dtype": "not-a-dtype"}, "not a numpy dtype"),
    ],
)
def test_benchmark_rejects_bad_arguments(small_model, kwargs, message):
    with pytest.raises(CourseError, match=message):
        bench.benchmark(small_model, (4,), **{"repeats": 1, "warmup": 0, **kwargs})


def test_benchmark_says_expected_and_given_input_shape(small_model):
    with pytest.raises(CourseError) as caught:
        bench.benchmark(small_model, (5,), repeats=1)
    assert "expects (4,)" in str(caught.value) and "got (5,)" in str(caught.value)
    with pytest.raises(CourseError, match="batch dimension"):
        bench.benchmark(small_model, (1, 4), repeats=1)
    with pytest.raises(CourseError, match="positive integers"):
        bench.check_input_shape(small_model, (0,))
    with pytest.raises(CourseError, match="positive integers"):
        bench.check_input_shape(small_model, "four")  # pyright: ignore[reportArgumentType]  (deliberately wrong type)


def test_benchmark_refuses_models_with_several_inputs():
    a, b = keras.Input((2,)), keras.Input((2,))
    model = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(CourseError, match="2 inputs"):
        bench.benchmark(model, (2,), repeats=1)


def test_benchmark_turns_a_failing_model_call_into_a_course_error():
    class NeedsSevenFeatures(keras.Model):
        def call(self, x):
            return tf.reshape(x, (-1, 7))

    with pytest.raises(CourseError, match="model failed on a batch of shape"):
        bench.benchmark(NeedsSevenFeatures(), (5,), batch_sizes=(1,), methods=("call",), repeats=1)


def test_lecture_benchmark_takes_one_sample_per_batch_size(small_model):
    rows = bench.lecture_benchmark(small_model, (4,), batch_sizes=(1, 2))
    assert [(r.method, r.batch_size, r.repeats) for r in rows] == [("lecture", 1, 1), ("lecture", 2, 1)]
    for row in rows:
        assert row.p50_ms == row.p95_ms == row.mean_ms > 0
        assert row.throughput == pytest.approx(row.batch_size / (row.p50_ms / 1000))


def test_speedup_is_the_ratio_of_median_latencies():
    rows = [
        bench.row_from_latencies("predict", 1, [40.0, 50.0, 60.0]),
        bench.row_from_latencies("function", 1, [1.0, 2.0, 30.0]),
    ]
    assert bench.speedup(rows, "function") == pytest.approx(50.0 / 2.0)
    with pytest.raises(CourseError, match="no row"):
        bench.speedup(rows, "xla")
    with pytest.raises(CourseError, match="no row"):
        bench.speedup(rows, "function", batch_size=8)


def _rows():
    return [bench.row_from_latencies(m, b, [1.0 * b, 2.0 * b]) for b in (1, 4) for m in ("predict", "call")]


def test_format_table_text_and_markdown_have_a_line_per_row():
    rows = _rows()
    text = bench.format_table(rows)
    markdown = bench.format_table(rows, style="markdown")
    for table in (text, markdown):
        lines = table.splitlines()
        assert len(lines) == len(rows) + 2
        assert "p50 ms" in lines[0] and "items/s" in lines[0]
    assert all(line.startswith("|") and line.endswith("|") for line in markdown.splitlines())
    assert markdown.splitlines()[2].split("|")[1].strip() == "predict"
    with pytest.raises(CourseError, match="'text' or 'markdown'"):
        bench.format_table(rows, style="html")


def test_plot_throughput_draws_one_line_per_method():
    rows = _rows()
    figure = bench.plot_throughput(rows)
    (axes,) = figure.axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert set(lines) == {"predict", "call"}
    assert list(lines["call"].get_xdata()) == [1, 4]
    assert list(lines["call"].get_ydata()) == [r.throughput for r in rows if r.method == "call"]
    with pytest.raises(CourseError, match="nothing to plot"):
        bench.plot_throughput([])


def test_build_benchmark_model_rejects_unknown_names():
    with pytest.raises(CourseError, match="unknown model"):
        bench.build_benchmark_model("vgg16")


def test_main_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "results.json"
    plot = tmp_path / "plot.png"
    code = bench.main(
        [
            "--model",
            "tiny-cnn",
            "--batch-sizes",
            "1,2",
            "--methods",
            "predict,function",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--out",
            str(out),
            "--plot",
            str(plot),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "p50 ratio predict/function@1" in printed
    saved = json.loads(out.read_text())
    assert [(r["method"], r["batch_size"]) for r in saved["rows"]] == [
        ("predict", 1),
        ("function", 1),
        ("predict", 2),
        ("function", 2),
    ]
    assert saved["machine"]["tensorflow"] == tf.__version__
    assert saved["ratios"]["predict/function@1"] == pytest.approx(
        saved["rows"][0]["p50_ms"] / saved["rows"][1]["p50_ms"]
    )
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_main_reports_bad_methods_without_a_traceback(capsys):
    with pytest.raises(SystemExit) as caught:
        bench.main(["--model", "tiny-cnn", "--methods", "predict,turbo", "--repeats", "1"])
    assert caught.value.code == 2
    assert "unknown benchmark method" in capsys.readouterr().err
