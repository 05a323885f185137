"""JSON <-> tensors follows TF Serving's json_tensor rules: formats, types, shapes, floats, errors."""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (Input, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from course_lib.serving import json_body, tensors
from course_lib.serving.errors import ServingError
from course_lib.serving.servable import TensorSpecInfo

FLOAT_X = {"x": TensorSpecInfo("x", types_pb2.DT_FLOAT, (None, 2))}
MULTI = {
    "a": TensorSpecInfo("a", types_pb2.DT_FLOAT, (None, 2)),
    "b": TensorSpecInfo("b", types_pb2.DT_INT32, (None,)),
}
STRING_IN = {"image_bytes": TensorSpecInfo("image_bytes", types_pb2.DT_STRING, (None,))}


def predict_inputs(body: dict, specs):
    raw = json.dumps(body).encode()
    return tensors.predict_inputs_from_json(json.loads(raw), specs, body_has_literals=b"true" in raw or b"false" in raw)


def error_of(call) -> ServingError:
    with pytest.raises(ServingError) as info:
        call()
    return info.value


def test_row_format_single_input_stacks_instances():
    arrays, fmt = predict_inputs({"instances": [[1, 2], [3.5, 4]]}, FLOAT_X)
    assert fmt == tensors.ROW
    np.testing.assert_array_equal(arrays["x"], np.array([[1, 2], [3.5, 4]], np.float32))
    assert arrays["x"].dtype == np.float32


def test_row_format_named_inputs_are_batched_per_name():
    arrays, _ = predict_inputs({"instances": [{"a": [1, 2], "b": 7}, {"a": [3, 4], "b": -1}]}, MULTI)
    np.testing.assert_array_equal(arrays["a"], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(arrays["b"], np.array([7, -1], np.int32))
    assert arrays["b"].dtype == np.int32


def test_columnar_format_takes_a_value_or_an_object_of_named_inputs():
    arrays, fmt = predict_inputs({"inputs": [[1, 2]]}, FLOAT_X)
    assert fmt == tensors.COLUMNAR and arrays["x"].shape == (1, 2)
    arrays, _ = predict_inputs({"inputs": {"a": [[1, 2], [3, 4]], "b": [5, 6]}}, MULTI)
    assert arrays["a"].shape == (2, 2) and arrays["b"].tolist() == [5, 6]


def test_b64_values_decode_to_bytes_and_plain_strings_to_utf8():
    payload = b"\x89PNG\x00\xff"
    arrays, _ = predict_inputs({"instances": [{"b64": base64.b64encode(payload).decode()}, "caf\u00e9"]}, STRING_IN)
    assert arrays["image_bytes"].tolist() == [payload, "caf\u00e9".encode()]


def test_nan_and_infinity_tokens_are_accepted_for_floats():
    doc = tensors.parse_json_object(b'{"instances": [[NaN, Infinity], [-Infinity, 1e3]]}')
    arrays, _ = tensors.predict_inputs_from_json(doc, FLOAT_X, body_has_literals=False)
    assert np.isnan(arrays["x"][0, 0]) and arrays["x"][0, 1] == np.inf and arrays["x"][1, 0] == -np.inf


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [["x", "y"]]}, "is not of expected type: float"),
        ({"instances": [[1, True]]}, "Type: True is not of expected type: float"),
        ({"instances": [[1, 2], [3]]}, "Expecting tensor size: 2 but got: 1"),
        ({"instances": [[1, 2], [[3, 4]]]}, "Expecting"),
        ({"inputs": [[1, 2], [3]]}, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ({"inputs": [[1, [2]]]}, "Encountered list at unexpected level"),
        ({"inputs": [[1, 2], 3]}, "found at incorrect level: 2"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"instances": {"x": 1}}, "Expecting 'instances' to be an list/array"),
        ({"instances": [[1, 2]], "inputs": [[1, 2]]}, "expecting only one of 'inputs' or 'instances'"),
        ({"signature_name": "serving_default"}, "Missing 'inputs' or 'instances' key"),
        ({"instances": [{"x": [1, 2]}, [3, 4]]}, "Expecting object but got list at item 1"),
    ],
)
def test_bad_single_input_requests_say_what_is_wrong(body, message):
    assert message in error_of(lambda: predict_inputs(body, FLOAT_X)).message


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [[1, 2]]}, "instances is a plain list, but expecting list of objects"),
        ({"instances": [{"a": [1, 2]}]}, "keys must be equal to: a,b"),
        ({"instances": [{"a": [1, 2], "b": 1, "c": 3}]}, "does not have named input: c"),
        ({"instances": [{"a": [1, 2], "b": 1.5}]}, "JSON Value: 1.5 Type: Number is not of expected type: int32"),
        ({"instances": [{"a": [1, 2], "b": 2**40}]}, "out of range for type: int32"),
        ({"inputs": [[1, 2]]}, "inputs is a plain value/list, but expecting an object"),
        ({"inputs": {"a": [[1, 2]]}}, "Missing named input: b in 'inputs' object."),
    ],
)
def test_bad_multi_input_requests_say_what_is_wrong(body, message):
    assert message in error_of(lambda: predict_inputs(body, MULTI)).message


def test_malformed_base64_is_rejected():
    assert (
        "Unable to base64 decode"
        in error_of(lambda: predict_inputs({"instances": [{"b64": "not base64!"}]}, STRING_IN)).message
    )
    assert (
        "not formatted correctly for base64"
        in error_of(lambda: predict_inputs({"inputs": [{"b64": "AA==", "extra": 1}]}, STRING_IN)).message
    )


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"instances = [1, 2]", "JSON Parse error: Invalid value."),
        (b'{"instances": [1, 2]', "JSON Parse error"),
        (b"[1, 2]", "Is not object"),
        (b"\xff\xfe", "JSON Parse error"),
    ],
)
def test_unparseable_bodies_are_invalid_argument(body, message):
    error = error_of(lambda: tensors.parse_json_object(body))
    assert message in error.message and error.http_status == 400


def test_signature_name_must_be_a_string():
    assert (
        "'signature_name' key must be a string value."
        in error_of(lambda: tensors.signature_name_from_json({"signature_name": 100})).message
    )


@pytest.mark.parametrize(
    "value, token",
    [
        (0.1, "0.1"),
        (2.0, "2.0"),
        (-0.0, "-0.0"),
        (1e6, "1e+06"),
        (3e-05, "3e-05"),
        (1 / 3, "0.333333343"),
        (np.nan, "NaN"),
        (np.inf, "Infinity"),
        (-np.inf, "-Infinity"),
    ],
)
def test_floats_are_written_like_tf_serving(value, token):
    assert tensors.format_float_tokens(np.array([value], np.float32)) == [token]


def test_every_float_token_round_trips_to_the_same_float32():
    values = np.random.default_rng(0).standard_normal(500).astype(np.float32) * 1e3
    parsed = np.array([float(t) for t in tensors.format_float_tokens(values)], np.float32)
    np.testing.assert_array_equal(parsed, values)


def test_doubles_keep_full_precision():
    (token,) = tensors.format_float_tokens(np.array([0.1 + 0.2]))
    assert float(token) == 0.1 + 0.2


def test_one_output_is_unnamed_and_several_are_objects_per_row():
    one = json.loads(tensors.predict_response_json({"y": np.array([[1.5], [2]], np.float32)}, tensors.ROW))
    assert one == {"predictions": [[1.5], [2.0]]}
    two = json.loads(
        tensors.predict_response_json(
            {"y": np.array([1.0, 2.0], np.float32), "k": np.array([3, 4], np.int64)}, tensors.ROW
        )
    )
    assert two == {"predictions": [{"k": 3, "y": 1.0}, {"k": 4, "y": 2.0}]}
    columnar = json.loads(
        tensors.predict_response_json(
            {"y": np.array([1.0, 2.0], np.float32), "k": np.array([True, False])}, tensors.COLUMNAR
        )
    )
    assert columnar == {"outputs": {"k": [True, False], "y": [1.0, 2.0]}}


def test_bytes_outputs_are_base64_objects_and_strings_stay_text():
    outputs = {"image_bytes": np.array([b"\x00\xff"], object), "label": np.array([b"dog"], object)}
    decoded = json.loads(tensors.predict_response_json(outputs, tensors.ROW))
    assert decoded == {"predictions": [{"image_bytes": {"b64": "AP8="}, "label": "dog"}]}


def test_row_format_needs_a_common_batch_size():
    outputs = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((3,), np.float32)}
    assert "inconsistent batch size" in error_of(lambda: tensors.predict_response_json(outputs, tensors.ROW)).message
    scalar = {"a": np.float32(1)}  # a scalar where an array belongs, on purpose
    assert (
        "has no shape information"
        in error_of(
            lambda: tensors.predict_response_json(scalar, tensors.ROW)  # pyright: ignore[reportArgumentType]
        ).message
    )


def test_examples_become_tf_examples_with_the_right_feature_kinds():
    example = tensors.example_from_json({"f": [1.5, 2.5], "i": 3, "flag": True, "s": "hi", "raw": {"b64": "AP8="}})
    features = example.features.feature
    assert list(features["f"].float_list.value) == [1.5, 2.5]
    assert list(features["i"].int64_list.value) == [3]
    assert list(features["flag"].int64_list.value) == [1]
    assert list(features["s"].bytes_list.value) == [b"hi"]
    assert list(features["raw"].bytes_list.value) == [b"\x00\xff"]


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"examples": [{"f": [1.5, 2]}]}, "Unexpected element type in feature: f expecting type: float"),
        ({"examples": [{"f": None}]}, "unexpected JSON type: Null"),
        ({"examples": [{"f": [[1.0]]}]}, "unexpected JSON type: Array"),
        ({"examples": [3]}, "Example must be JSON object"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": {"f": 1}}, "Expecting 'examples' value to be an list/array"),
        ({"context": {"f": 1.0}}, "key 'examples' is expected and was not found"),
    ],
)
def test_bad_examples_are_rejected(doc, message):
    assert message in error_of(lambda: tensors.fill_input_from_json(doc, input_pb2.Input())).message


def test_context_is_kept_apart_from_examples():
    request = input_pb2.Input()
    tensors.fill_input_from_json({"context": {"c": 1.0}, "examples": [{"x": 2.0}]}, request)
    assert request.WhichOneof("kind") == "example_list_with_context"
    assert list(request.example_list_with_context.context.features.feature["c"].float_list.value) == [1.0]


def test_classification_and_regression_results_json():
    result = classification_pb2.ClassificationResult()
    row = result.classifications.add()
    row.classes.add(label="cat", score=0.25)
    row.classes.add(label="dog", score=0.75)
    assert json.loads(tensors.classification_result_json(result)) == {"results": [[["cat", 0.25], ["dog", 0.75]]]}
    regression = regression_pb2.RegressionResult()
    regression.regressions.add(value=3.5)
    assert json.loads(tensors.regression_result_json(regression)) == {"results": [3.5]}


def test_error_body_is_tf_servings_shape():
    assert json.loads(tensors.error_json('bad "thing"')) == {"error": 'bad "thing"'}


# Integers of 20+ digits can pass 64 bits: orjson would turn them into floats (or refuse them), so such
# bodies take json.loads, which keeps them exact or answers 400 past Python's 4300-digit limit.
BIG_INTEGER_BODIES = [
    b'{"instances": [123456789012345678901234]}',
    b'{"instances": [-123456789012345678901234]}',
    b'{"instances": [0.00019999999494757503, 12345678901234567890]}',
    b'{"instances": [1e-00000000000000000005,-98765432109876543210]}',
]


@pytest.mark.parametrize("body", BIG_INTEGER_BODIES)
def test_integers_past_64_bits_take_the_careful_parse_and_stay_exact(body):
    assert json_body.has_long_integer(body)
    assert json_body.fast_loads(body) is json_body.NOT_PARSED
    doc = tensors.parse_json_object(body)
    assert doc == json.loads(body) and any(isinstance(v, int) and abs(v) >= 2**63 for v in doc["instances"])


@pytest.mark.parametrize("sign", [b"", b"-"])
def test_integers_past_pythons_digit_limit_are_a_400(sign):
    error = error_of(lambda: tensors.parse_json_object(b'{"instances": [' + sign + b"9" * 5000 + b"]}"))
    assert error.http_status == 400
    assert error.message.startswith("JSON Parse error: Exceeds the limit (4300 digits) for integer string conversion")


# json.dumps writes float32 values with up to 17 significant digits, so small ones have 20+ digit
# fractions (0.00019999999494757503); they, long exponents and long integer parts of floats are no
# integers and keep orjson's parse, with the same result json.loads gives.
FLOAT_BODIES = [
    json.dumps({"instances": [float(v) for v in np.array([0.0002, -0.0002, 3e-7, 0.5], np.float32)]}).encode(),
    b'{"instances": [1e-00000000000000000005, 1E+00000000000000000003, 2e00000000000000000001]}',
    b'{"instances": [12345678901234567890.5, 12345678901234567890e-3, -12345678901234567890E2]}',
    b'{"instances": [1.0000000000000000000001]}',
]


@pytest.mark.parametrize("body", FLOAT_BODIES)
def test_long_fractions_and_exponents_keep_the_fast_parse(body):
    assert re.search(rb"\d{20,}", body), "each body has a run of 20+ digits, the case the check must tell apart"
    assert not json_body.has_long_integer(body)
    fast = json_body.fast_loads(body)
    assert fast is not json_body.NOT_PARSED and fast == json.loads(body)
    assert tensors.parse_json_object(body) == json.loads(body)


# ----- bodies whose list the dense parse made (json_body.parse_with_dense_value) ------------------

INT8_X = {"x": TensorSpecInfo("x", types_pb2.DT_INT8, (None, 2))}
FAST, FULL = "numpy's fast path", "the full parse"
DENSE_CASES = [
    ({"instances": [[1.5, 2.0], [3.25, -4e-3]]}, FLOAT_X, FAST),
    ({"instances": [[1, 2], [3, 4]]}, FLOAT_X, FAST),  # integers for a float input
    ({"inputs": [[1, 2], [3, 4]]}, INT8_X, FAST),
    ({"inputs": [[0.00019999999494757503, 1e30]]}, FLOAT_X, FAST),
    ({"instances": [[1.5, 2.0]], "signature_name": "serving_default"}, FLOAT_X, FAST),
    ({"instances": [[1.5, 2.0]]}, INT8_X, FULL),  # floats for an int input: the full parse words the error
    ({"instances": [[1, 200]]}, INT8_X, FULL),  # out of int8's range: the same
    ({"instances": [[1.0, 2.0]]}, MULTI, FULL),  # a plain list for two inputs: the same
    ({"inputs": [[1.0, 2.0]]}, STRING_IN, FULL),
]


@pytest.mark.parametrize(("body", "specs", "path"), DENSE_CASES)
def test_a_dense_value_gives_the_full_parse_s_arrays_or_asks_for_the_full_parse(body, specs, path):
    raw = json.dumps(body).encode()
    doc = json_body.parse_with_dense_value(raw)
    assert doc is not None, "a plain numeric body must be taken by the dense parse"
    assert any(isinstance(doc[key], json_body.DenseValue) for key in json_body.TENSOR_KEYS if key in doc)
    if path == FULL:
        with pytest.raises(tensors.FullParseNeededError):
            tensors.predict_inputs_from_json(doc, specs)
        return
    got = tensors.predict_inputs_from_json(doc, specs)
    expected = tensors.predict_inputs_from_json(tensors.parse_json_object(raw), specs)
    assert got[1] == expected[1]
    assert got[0].keys() == expected[0].keys()
    for name, array in got[0].items():
        assert array.dtype == expected[0][name].dtype and array.shape == expected[0][name].shape
        np.testing.assert_array_equal(array, expected[0][name])
