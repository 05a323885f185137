"""numpy <-> TensorProto for gRPC Predict, without TensorFlow's general helpers on every request.

`tf.make_ndarray` and `tf.make_tensor_proto` handle every dtype and layout, and pay for it in
Python on each call. Requests and answers nearly always hold numbers in `tensor_content` or in
the typed field of their dtype with one value per element: those go straight between numpy and
the proto here. Anything else (strings, complex, half and bfloat16 values, a typed field shorter
than the shape, which TensorFlow pads) goes through TensorFlow's helpers, so the result is
always exactly theirs.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (TensorProto, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from course_lib.serving.errors import invalid_argument

# The typed field tf.make_ndarray reads for each dtype with a numpy twin (half/bfloat16 excluded:
# their `half_val` holds bit patterns).
_READ_FIELDS = {
    types_pb2.DT_FLOAT: ("float_val", np.dtype(np.float32)),
    types_pb2.DT_DOUBLE: ("double_val", np.dtype(np.float64)),
    types_pb2.DT_INT8: ("int_val", np.dtype(np.int8)),
    types_pb2.DT_INT16: ("int_val", np.dtype(np.int16)),
    types_pb2.DT_INT32: ("int_val", np.dtype(np.int32)),
    types_pb2.DT_UINT8: ("int_val", np.dtype(np.uint8)),
    types_pb2.DT_UINT16: ("int_val", np.dtype(np.uint16)),
    types_pb2.DT_INT64: ("int64_val", np.dtype(np.int64)),
    types_pb2.DT_UINT32: ("uint32_val", np.dtype(np.uint32)),
    types_pb2.DT_UINT64: ("uint64_val", np.dtype(np.uint64)),
    types_pb2.DT_BOOL: ("bool_val", np.dtype(np.bool_)),
}

# Where TF Serving's Tensor::AsProtoField writes each dtype's values (the typed fields clients read).
TYPED_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
}

_NO_ENUM = -1
_enum_by_numpy_dtype: dict[np.dtype, int] = {}
_numpy_dtype_by_enum: dict[int, np.dtype] = {kind: dtype for kind, (_field, dtype) in _READ_FIELDS.items()}


def _datatype_enum(dtype: np.dtype) -> int:
    """TensorFlow's DataType for a numeric numpy dtype, _NO_ENUM for others (cached: TF's lookup is slow)."""
    enum = _enum_by_numpy_dtype.get(dtype)
    if enum is None:
        enum = tf.dtypes.as_dtype(dtype).as_datatype_enum if dtype.kind in "biuf" else _NO_ENUM
        _enum_by_numpy_dtype[dtype] = enum
    return enum


def _numpy_dtype(enum: int) -> np.dtype:
    dtype = _numpy_dtype_by_enum.get(enum)
    if dtype is None:
        dtype = np.dtype(tf.dtypes.as_dtype(enum).as_numpy_dtype)
        _numpy_dtype_by_enum[enum] = dtype
    return dtype


def tensor_proto_to_array(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    """A request TensorProto as numpy (strings become an object array of bytes), as tf.make_ndarray reads it."""
    try:
        shape = [d.size for d in proto.tensor_shape.dim]
        dtype_enum = proto.dtype
        if proto.tensor_content and dtype_enum not in (types_pb2.DT_STRING, types_pb2.DT_INVALID):
            return np.frombuffer(proto.tensor_content, dtype=_numpy_dtype(dtype_enum)).reshape(shape)
        typed = _READ_FIELDS.get(dtype_enum)
        if typed is not None:
            values = getattr(proto, typed[0])
            count = len(values)
            if count == int(np.prod(shape, dtype=np.int64)):
                return np.fromiter(values, dtype=typed[1], count=count).reshape(shape)
        return tf.make_ndarray(proto)
    except Exception as exc:  # malformed protos raise TypeError/ValueError from deep inside TF
        raise invalid_argument(f"Input '{name}' is not a valid TensorProto: {exc}") from None


def fill_tensor_proto(proto: tensor_pb2.TensorProto, value: np.ndarray, tensor_content: bool = False) -> None:
    """Write numpy into an empty TensorProto (a response's output, in place), laid out as TF Serving does.

    By default the values go in the typed field of their dtype (`float_val`, `int64_val`, ...), which
    is what TF Serving sends and what most clients read (`outputs["y"].float_val`); with
    `--enable_serialization_as_tensor_content` numbers go in `tensor_content`, raw bytes, as there.
    tf.make_ndarray reads both.
    """
    dtype = _datatype_enum(value.dtype)
    if dtype not in TYPED_FIELDS:
        proto.CopyFrom(tf.make_tensor_proto(value))  # strings, complex numbers: TensorFlow's own layout
        return
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for size in value.shape:
        dims.add(size=size)
    if tensor_content:
        proto.tensor_content = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
    elif dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        proto.half_val.extend(np.ascontiguousarray(value).view(np.uint16).ravel().tolist())
    else:
        getattr(proto, TYPED_FIELDS[dtype]).extend(value.ravel().tolist())


def array_to_tensor_proto(value: np.ndarray, tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """numpy as a new TensorProto (see fill_tensor_proto)."""
    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, value, tensor_content)
    return proto
