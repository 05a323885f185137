"""Model warm-up the way TF Serving does it: replay `assets.extra/tf_serving_warmup_requests`.

The file holds PredictionLog records (TFRecord format). Before a version becomes AVAILABLE, each
record's request runs `--num_request_iterations_for_warmup` times (default 1); a record that fails,
or more than 1,000 records, fail the load, as in TF Serving (saved_model_warmup_util.cc), so a
version that cannot answer its own warm-up requests is never served. `write_warmup_requests`
writes such a file (export_model(..., warmup_inputs=...) calls it).
"""

# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from course_lib.serving.errors import invalid_argument

log = logging.getLogger("course_lib.serving")

ASSETS_EXTRA = "assets.extra"
REQUESTS_FILE = "tf_serving_warmup_requests"  # WarmupConsts::kRequestsFileName
MAX_RECORDS = 1000  # WarmupConsts::kMaxNumRecords


@dataclass(frozen=True)
class WarmupOptions:
    """--enable_model_warmup (default true) and --num_request_iterations_for_warmup (default 1)."""

    enabled: bool = True
    iterations: int = 1


def warmup_file(version_dir: str | Path) -> Path:
    return Path(version_dir) / ASSETS_EXTRA / REQUESTS_FILE


def write_warmup_requests(
    version_dir: str | Path, batches: Sequence[Mapping[str, np.ndarray]], signature_name: str = ""
) -> Path:
    """Write one PredictLog record per batch ({input alias: array}) into the version's assets.extra/."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = warmup_file(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature_name
            for alias, value in batch.items():
                request.inputs[alias].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
            record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(record.SerializeToString())
    return path


def replay(model, options: WarmupOptions) -> int:
    """Run the version's warm-up records; the number read (0: no file). Raises when one fails."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from course_lib.serving.servable import check_inputs
    from course_lib.serving.service import (  # service imports the registry, which calls this: import late
        DEFAULT_SIGNATURE,
        _classify_regress_signature,
        serialized_examples,
    )

    path = warmup_file(model.path)
    if not options.enabled or not path.is_file():
        return 0
    count = 0
    try:
        records = [bytes(r) for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]
    except tf.errors.DataLossError as error:
        raise invalid_argument(f"{error.message}. Please verify your warmup data is in TFRecord format.") from None
    for raw in records:
        entry = prediction_log_pb2.PredictionLog()
        try:
            entry.ParseFromString(raw)
        except Exception:
            raise invalid_argument(f"Failed to parse warmup record: {raw[:80]!r} from {path}") from None
        count += 1
        if count > MAX_RECORDS:
            raise invalid_argument(f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}")
        kind = entry.WhichOneof("log_type")
        for _ in range(options.iterations):
            if kind == "predict_log":
                request = entry.predict_log.request
                signature = model.signatures.get(request.model_spec.signature_name or DEFAULT_SIGNATURE)
                if signature is None:
                    raise invalid_argument(
                        f"warm-up record {count}: no signature {request.model_spec.signature_name!r}"
                    )
                inputs = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
                check_inputs(signature, inputs)
                model.run(signature, inputs, tuple(request.output_filter) or tuple(signature.outputs))
            elif kind in ("classify_log", "regress_log"):
                request = getattr(entry, kind).request
                signature = _classify_regress_signature(
                    model, request.model_spec.signature_name, classify=kind == "classify_log"
                )
                model.run(signature, {"inputs": serialized_examples(request.input)}, tuple(signature.outputs))
            else:
                raise invalid_argument(f"Unsupported log_type for warmup: {kind}")
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d.", path, count)
    return count
