"""The gRPC tensor codec reads and writes exactly what TensorFlow's own helpers do, only faster.

Every case is checked against tf.make_ndarray / tf.make_tensor_proto on the same proto or array:
numbers in tensor_content and in the typed fields, short typed fields (TensorFlow pads them),
strings, half precision, and malformed protos (a clear INVALID_ARGUMENT).
"""

# Generated *_pb2 modules build their message classes at import time: pyright cannot see them.
# pyright: reportAttributeAccessIssue=false

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from course_lib.serving.errors import ServingError
from course_lib.serving.proto_codec import array_to_tensor_proto, fill_tensor_proto, tensor_proto_to_array

NUMERIC = [np.float32, np.float64, np.int8, np.int16, np.int32, np.uint8, np.uint16, np.int64, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", [*NUMERIC, np.bool_, np.float16])
@pytest.mark.parametrize("tensor_content", [False, True])
def test_round_trip_matches_tensorflow(dtype, tensor_content):
    values = (np.arange(12).reshape(3, 4) % 7).astype(dtype)
    proto = array_to_tensor_proto(values, tensor_content)
    assert proto.dtype == tf.as_dtype(dtype).as_datatype_enum
    assert [d.size for d in proto.tensor_shape.dim] == [3, 4]
    assert bool(proto.tensor_content) == tensor_content
    decoded = tensor_proto_to_array("x", proto)
    assert decoded.dtype == values.dtype and decoded.shape == values.shape
    np.testing.assert_array_equal(decoded, tf.make_ndarray(proto))
    np.testing.assert_array_equal(decoded, values)


def test_typed_fields_by_default_as_tf_serving_writes_them():
    proto = array_to_tensor_proto(np.array([[0.25, 0.75]], np.float32))
    assert list(proto.float_val) == [0.25, 0.75] and proto.tensor_content == b""
    proto = array_to_tensor_proto(np.array([3, -4], np.int64))
    assert list(proto.int64_val) == [3, -4]


def test_fill_writes_into_a_response_output_in_place():
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    fill_tensor_proto(response.outputs["y"], np.array([1.5], np.float32))
    assert list(response.outputs["y"].float_val) == [1.5]


@pytest.mark.parametrize(
    "proto",
    [
        tf.make_tensor_proto(np.array([b"a", b"bc"], dtype=object)),  # strings
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0], tensor_shape={"dim": [{"size": 3}]}),
        tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape={"dim": [{"size": 2}]}),  # no values: zeros
        tf.make_tensor_proto(np.array([1 + 2j], np.complex64)),
    ],
    ids=["strings", "short-typed-field", "empty-typed-field", "complex"],
)
def test_unusual_layouts_read_as_tensorflow_reads_them(proto):
    decoded = tensor_proto_to_array("x", proto)
    expected = tf.make_ndarray(proto)
    assert decoded.dtype == expected.dtype
    np.testing.assert_array_equal(decoded, expected)


def test_strings_are_written_in_tensorflows_layout():
    values = np.array([b"x", b"yz"], dtype=object)
    assert array_to_tensor_proto(values) == tf.make_tensor_proto(values)


def test_a_malformed_proto_is_the_clients_error():
    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 7, tensor_shape={"dim": [{"size": 2}]}
    )
    with pytest.raises(ServingError) as caught:
        tensor_proto_to_array("image", proto)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("Input 'image' is not a valid TensorProto: ")
