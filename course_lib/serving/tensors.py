"""JSON <-> tensors for the REST API, following TF Serving's `json_tensor.cc` rule for rule.

Requests: row format (`instances`) and columnar format (`inputs`), `{"b64": ...}` for binary
strings, `NaN`/`Infinity` tokens, dense shapes only (a ragged list is an error that says where).
Responses: `predictions` (row) or `outputs` (columnar); one output is written without its name;
floats are written the way TF Serving writes them (shortest of `%g`, else full precision, with
`.0` on whole numbers); outputs named `*_bytes` are base64 objects. Classify/Regress examples
become `tf.train.Example` protos, as in TF Serving.

Numbers take a numpy fast path; anything unusual falls back to a walk that reports TF Serving's
error messages.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2

from course_lib.serving.errors import invalid_argument, unimplemented
from course_lib.serving.json_body import NOT_PARSED, DenseValue, fast_loads
from course_lib.serving.servable import TensorSpecInfo, dtype_name

ROW, COLUMNAR = "row", "columnar"
MAX_DEBUG_CHARS = 256

_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**7), 2**7 - 1),
    types_pb2.DT_UINT8: (0, 2**8 - 1),
    types_pb2.DT_INT16: (-(2**15), 2**15 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_FLOATS = {types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE}
_SUPPORTED = set(_INT_RANGES) | _FLOATS | {types_pb2.DT_STRING, types_pb2.DT_BOOL}
# numpy kinds the fast path may accept for each target dtype family
_FAST_KINDS = {"float": "fiu", "int": "iu", "bool": "b"}


# ----- request parsing ---------------------------------------------------------------------------


def json_debug_string(value: Any) -> str:
    """A JSON value as text for error messages, cut at 256 characters like TF Serving does.

    Written without recursion and stopping at the cut, so a body nested thousands of levels deep,
    or holding a million numbers, costs no more than a small one.
    """
    parts: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and size <= MAX_DEBUG_CHARS:
        item = stack.pop()
        if isinstance(item, _Text):
            text = str(item)
        elif isinstance(item, dict):
            text = "{"
            entries: list[Any] = [_Text("}")]
            for index, (key, child) in enumerate(reversed(list(item.items())[:MAX_DEBUG_CHARS])):
                entries += [child, _Text(_scalar_text(str(key)) + ": ")]
                if index < len(item) - 1:
                    entries.append(_Text(", "))
            stack += entries
        elif isinstance(item, list):
            text = "["
            entries = [_Text("]")]
            for index, child in enumerate(reversed(item[:MAX_DEBUG_CHARS])):
                entries.append(child)
                if index < len(item) - 1:
                    entries.append(_Text(", "))
            stack += entries
        else:
            text = _scalar_text(item)
        parts.append(text)
        size += len(text)
    return "".join(parts)[:MAX_DEBUG_CHARS]


class _Text(str):
    """Punctuation json_debug_string writes as it is (a str subclass, told apart from JSON strings)."""


def _scalar_text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**MAX_DEBUG_CHARS:
        return "9" * MAX_DEBUG_CHARS  # past Python's int-to-text limit, and longer than the cut anyway
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def json_type_name(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def parse_json_object(body: bytes) -> dict:
    """Parse a request body; it must be one JSON object (NaN and Infinity tokens are allowed)."""
    if not body or not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    doc = fast_loads(body)
    try:
        doc = json.loads(body) if doc is NOT_PARSED else doc
    except UnicodeDecodeError as exc:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}") from None
    except json.JSONDecodeError as exc:
        reason = "Invalid value." if exc.msg == "Expecting value" else exc.msg
        raise invalid_argument(f"JSON Parse error: {reason} at offset: {exc.pos}") from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: the document is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer past Python's 4300-digit limit: the client's input, a 400
        raise invalid_argument(f"JSON Parse error: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {json_debug_string(doc)} Is not object")
    return doc


def signature_name_from_json(doc: dict) -> str:
    """The optional `signature_name` (empty string when absent); it must be a string."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {json_debug_string(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def _is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64_object(value)


def _decode_b64(value: Any) -> bytes:
    if not _is_b64_object(value):
        raise invalid_argument(f"JSON Value: {json_debug_string(value)} not formatted correctly for base64 data")
    text = value["b64"].strip()
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _type_error(value: Any, dtype: int):
    return invalid_argument(
        f"JSON Value: {json_debug_string(value)} Type: {json_type_name(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def _leaf_value(value: Any, dtype: int):
    """One JSON scalar as a Python value of the tensor's dtype (AddValueToTensor)."""
    if dtype == types_pb2.DT_STRING:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict):
            return _decode_b64(value)
        raise _type_error(value, dtype)
    if dtype == types_pb2.DT_BOOL:
        if isinstance(value, bool):
            return value
        raise _type_error(value, dtype)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, dtype)
    if dtype in _FLOATS:
        return float(value)
    if not isinstance(value, int):
        raise _type_error(value, dtype)
    low, high = _INT_RANGES[dtype]
    if not low <= value <= high:
        raise invalid_argument(
            f"JSON Value: {_scalar_text(value)} Type: Number is not of expected type: {dtype_name(dtype)}\n"
            f"JSON Value: {_scalar_text(value)} is out of range for type: {dtype_name(dtype)} ({low} to {high})"
        )
    return value


def _dense_shape(value: Any) -> list[int]:
    """The shape implied by following the first element of every nested list."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _walk(value: Any, level: int, shape: list[int], dtype: int, out: list) -> None:
    """Check a nested list is dense with the expected shape, collecting its leaves (FillTensorProto)."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {json_debug_string(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        out.append(_leaf_value(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}"
        )
    for item in value:
        _walk(item, level + 1, shape, dtype, out)


def _family(dtype: int) -> str:
    if dtype in _FLOATS:
        return "float"
    if dtype == types_pb2.DT_BOOL:
        return "bool"
    if dtype == types_pb2.DT_STRING:
        return "string"
    return "int"


def _fast_array(value: Any, spec: TensorSpecInfo) -> np.ndarray | None:
    """numpy's own conversion when the values are plainly numbers of the right kind, else None."""
    family = _family(spec.dtype)
    if family == "string":
        return None
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None  # ragged or mixed: the walk reports where
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(spec.numpy_dtype)
    if kind not in _FAST_KINDS[family]:
        return None
    if family == "int":
        low, high = _INT_RANGES[spec.dtype]
        if array.min() < low or array.max() > high:
            return None
    return array.astype(spec.numpy_dtype, copy=False)


def json_to_array(value: Any, spec: TensorSpecInfo, *, fast: bool = True) -> np.ndarray:
    """One JSON value (scalar or nested list) as a dense numpy array of the input's dtype.

    `fast=False` forces the checking walk; callers pass it when the body holds `true`/`false`,
    which numpy would silently turn into numbers.
    """
    if spec.dtype not in _SUPPORTED:
        raise unimplemented(f"Conversion of JSON Value: {json_debug_string(value)} to type: {dtype_name(spec.dtype)}")
    if fast:
        array = _fast_array(value, spec)
        if array is not None:
            return array
    shape = _dense_shape(value)
    leaves: list = []
    _walk(value, 0, shape, spec.dtype, leaves)
    if spec.dtype == types_pb2.DT_STRING:
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    return np.array(leaves, dtype=spec.numpy_dtype).reshape(shape)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _stack_instances(items: list[np.ndarray], name: str) -> np.ndarray:
    first = items[0]
    for item in items[1:]:
        if item.size != first.size:
            raise invalid_argument(f"Expecting tensor size: {first.size} but got: {item.size}")
        if item.shape != first.shape:
            raise invalid_argument(f"Expecting shape {_shape_text(first.shape)} but got: {_shape_text(item.shape)}")
    if first.dtype == object:
        flat = [value for item in items for value in item.ravel().tolist()]
        stacked = np.empty(len(flat), dtype=object)
        stacked[:] = flat
        return stacked.reshape((len(items), *first.shape))
    return np.stack(items)


class FullParseNeededError(Exception):
    """A DenseValue that the fast path cannot take as it is: parse the body again, the full way, so
    that the request gets the answer (or the error message) a plain parse gives."""


def _dense_input(value: DenseValue, specs: Mapping[str, TensorSpecInfo], *, row: bool) -> dict[str, np.ndarray]:
    """The one input of a body whose list the dense parse (json_body) already made into an array."""
    if len(specs) == 1:
        name, spec = next(iter(specs.items()))
        if row or spec.dtype in _SUPPORTED:  # the checks the list's own path makes before numpy's
            array = _fast_array(value.array, spec)
            if array is not None and array.ndim >= 1:
                return {name: array}
    raise FullParseNeededError


def _row_inputs(instances: Any, specs: Mapping[str, TensorSpecInfo], fast: bool) -> dict[str, np.ndarray]:
    if isinstance(instances, DenseValue):
        return _dense_input(instances, specs, row=True)
    if not isinstance(instances, list):
        raise invalid_argument(
            f"JSON Value: {json_debug_string({'instances': instances})} Expecting 'instances' to be an list/array"
        )
    if not instances:
        raise invalid_argument(
            f"JSON Value: {json_debug_string({'instances': instances})} No values in 'instances' array"
        )
    if not _is_named_object(instances[0]) and len(specs) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors required "
            "as per tensorinfo_map"
        )
    if not _is_named_object(instances[0]):
        name, spec = next(iter(specs.items()))
        for index, item in enumerate(instances):
            if _is_named_object(item):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
        if fast:
            array = _fast_array(instances, spec)
            if array is not None and array.ndim >= 1:
                return {name: array}
        items = []
        for index, item in enumerate(instances):
            try:
                items.append(json_to_array(item, spec, fast=False))
                if index:
                    _stack_instances([items[0], items[-1]], name)
            except Exception as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: {exc}"
                ) from None
        return {name: _stack_instances(items, name)}

    per_input: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    expected_keys = ",".join(sorted(specs))
    for index, item in enumerate(instances):
        if not _is_named_object(item):
            raise invalid_argument(f"Expecting object but got list at item {index} of input list")
        for key, value in item.items():
            try:
                if key not in specs:
                    raise invalid_argument(f"JSON object: does not have named input: {key}")
                per_input[key].append(json_to_array(value, specs[key], fast=fast))
                if len(per_input[key]) > 1:
                    _stack_instances([per_input[key][0], per_input[key][-1]], key)
            except Exception as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} key: {key} of 'instances' list. Error: {exc}"
                ) from None
        if set(item) != set(specs):
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{json_debug_string(item)} keys must be equal to: {expected_keys}"
            )
    return {name: _stack_instances(items, name) for name, items in per_input.items()}


def _columnar_inputs(inputs: Any, specs: Mapping[str, TensorSpecInfo], fast: bool) -> dict[str, np.ndarray]:
    if isinstance(inputs, DenseValue):
        return _dense_input(inputs, specs, row=False)
    if not _is_named_object(inputs):
        if len(specs) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name, spec = next(iter(specs.items()))
        return {name: json_to_array(inputs, spec, fast=fast)}
    arrays = {}
    for name, spec in specs.items():
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(inputs[name], spec, fast=fast)
    return arrays


def predict_inputs_from_json(
    doc: dict, specs: Mapping[str, TensorSpecInfo], *, body_has_literals: bool = True
) -> tuple[dict[str, np.ndarray], str]:
    """Input tensors of a Predict request body, and whether it used the row or columnar format."""
    if not specs:
        raise invalid_argument(f"Failed to get input map for signature: {signature_name_from_json(doc) or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {json_debug_string(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    fast = not body_has_literals
    if has_instances:
        return _row_inputs(doc["instances"], specs, fast), ROW
    if has_inputs:
        return _columnar_inputs(doc["inputs"], specs, fast), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ----- classify / regress requests ---------------------------------------------------------------


def _add_feature_value(feature: feature_pb2.Feature, name: str, value: Any) -> None:
    """AddValueToFeature: numbers with a fraction are floats, whole numbers and bools int64."""
    kind = feature.WhichOneof("kind")

    def require(expected: str) -> None:
        if kind not in (None, expected):
            raise invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {kind.replace('_list', '')}"
            )

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64_object(value)):
        raise invalid_argument(f"Feature: {name} has element with unexpected JSON type: {json_type_name(value)}")
    if isinstance(value, bool):
        require("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        require("bytes_list")
        feature.bytes_list.value.append(_decode_b64(value))
    elif isinstance(value, str):
        require("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float):
        require("float_list")
        feature.float_list.value.append(value)
    else:
        require("int64_list")
        if not -(2**63) <= value < 2**63:
            raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature.int64_list.value.append(value)


def example_from_json(value: Any) -> example_pb2.Example:
    """One JSON object of features as a tf.train.Example."""
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type_name(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(feature, name, item)
        example.features.feature[name].CopyFrom(feature)
    return example


def fill_input_from_json(doc: dict, input_proto) -> None:
    """Fill a tensorflow.serving.Input proto from a Classify/Regress body (`context`, `examples`)."""
    has_context = "context" in doc
    if has_context:
        input_proto.example_list_with_context.context.CopyFrom(example_from_json(doc["context"]))
    if "examples" not in doc:
        raise invalid_argument(
            f"JSON Value: {json_debug_string(doc)} When method is classify, key 'examples' is expected and "
            "was not found"
        )
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise invalid_argument(f"JSON Value: {json_debug_string(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid_argument(f"JSON Value: {json_debug_string(doc)} 'examples' value is an empty array")
    target = input_proto.example_list_with_context if has_context else input_proto.example_list
    for value in examples:
        target.examples.add().CopyFrom(example_from_json(value))


# ----- responses -----------------------------------------------------------------------------------


def format_float_tokens(values: np.ndarray) -> list[str]:
    """Floats as TF Serving writes them: `%g` if it round-trips, else 9 (float) or 17 (double) digits."""
    flat = np.asarray(values).ravel()
    is_double = flat.dtype == np.float64
    as_python = flat.astype(np.float64).tolist()
    tokens = [f"{v:g}" for v in as_python]
    finite = np.isfinite(flat)
    if tokens:
        parsed = np.array([float(t) if ok else 0.0 for t, ok in zip(tokens, finite.tolist(), strict=True)])
        if not is_double:
            parsed = parsed.astype(flat.dtype)
        mismatched = np.nonzero(finite & (parsed != flat))[0]
        precision = ".17g" if is_double else ".9g"
        for index in mismatched.tolist():
            tokens[index] = format(as_python[index], precision)
    for index, token in enumerate(tokens):
        value = as_python[index]
        if math.isnan(value):
            tokens[index] = "NaN"
        elif math.isinf(value):
            tokens[index] = "-Infinity" if value < 0 else "Infinity"
        elif "." not in token and "e" not in token:
            tokens[index] = token + ".0"
    return tokens


def _value_tokens(array: np.ndarray, as_b64: bool) -> list[str]:
    kind = array.dtype.kind
    if kind == "f":
        return format_float_tokens(array.astype(np.float32) if array.dtype == np.float16 else array)
    if kind == "b":
        return ["true" if v else "false" for v in array.ravel().tolist()]
    if kind in "iu":
        return [str(v) for v in array.ravel().tolist()]
    tokens = []
    for value in array.ravel().tolist():
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if as_b64:
            tokens.append('{"b64": "' + base64.b64encode(raw).decode("ascii") + '"}')
        else:
            tokens.append(json.dumps(raw.decode("utf-8", errors="replace")))
    return tokens


def _nest(tokens: list[str], shape: tuple[int, ...]) -> str:
    if not shape:
        return tokens[0]
    if len(shape) == 1:
        return "[" + ", ".join(tokens) + "]"
    step = len(tokens) // shape[0] if shape[0] else 0
    return "[" + ", ".join(_nest(tokens[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])) + "]"


def array_to_json(array: np.ndarray, name: str = "") -> str:
    """A numpy array as nested JSON text; `*_bytes` string outputs become `{"b64": ...}` objects."""
    array = np.asarray(array)
    as_b64 = name.endswith("_bytes") and array.dtype.kind in "OSU"
    return _nest(_value_tokens(array, as_b64), array.shape)


def _row_strings(array: np.ndarray, name: str) -> list[str]:
    as_b64 = name.endswith("_bytes") and array.dtype.kind in "OSU"
    tokens = _value_tokens(array, as_b64)
    step = len(tokens) // array.shape[0] if array.shape[0] else 0
    return [_nest(tokens[i * step : (i + 1) * step], array.shape[1:]) for i in range(array.shape[0])]


def predict_response_json(outputs: Mapping[str, np.ndarray], request_format: str) -> str:
    """The JSON body of a Predict answer: `predictions` for row requests, `outputs` for columnar."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format == COLUMNAR:
        if len(names) == 1:
            body = array_to_json(outputs[names[0]], names[0])
        else:
            body = "{" + ", ".join(f"{json.dumps(n)}: {array_to_json(outputs[n], n)}" for n in names) + "}"
        return '{\n    "outputs": ' + body + "\n}"
    batch_size = None
    for name in names:
        array = np.asarray(outputs[name])
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and array.shape[0] != batch_size:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch_size}"
            )
        batch_size = array.shape[0]
    if len(names) == 1:
        body = array_to_json(outputs[names[0]], names[0])
    else:
        rows = {name: _row_strings(np.asarray(outputs[name]), name) for name in names}
        # every output has the same number of rows (the batch size checked above)
        objects = [
            "{" + ", ".join(f"{json.dumps(n)}: {rows[n][i]}" for n in names) + "}" for i in range(len(rows[names[0]]))
        ]
        body = "[" + ", ".join(objects) + "]"
    return '{\n    "predictions": ' + body + "\n}"


def classification_result_json(result) -> str:
    """`{"results": [[[label, score], ...], ...]}` from a ClassificationResult proto."""
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        scores = format_float_tokens(np.array([c.score for c in classifications.classes], np.float32))
        pairs = [f"[{json.dumps(c.label)}, {score}]" for c, score in zip(classifications.classes, scores, strict=True)]
        rows.append("[" + ", ".join(pairs) + "]")
    return '{\n    "results": [' + ", ".join(rows) + "]\n}"


def regression_result_json(result) -> str:
    """`{"results": [value, ...]}` from a RegressionResult proto."""
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    values = format_float_tokens(np.array([r.value for r in result.regressions], np.float32))
    return '{\n    "results": [' + ", ".join(values) + "]\n}"


def error_json(message: str) -> str:
    """TF Serving's error body: `{"error": "..."}`."""
    return '{ "error": ' + json.dumps(message) + " }"
