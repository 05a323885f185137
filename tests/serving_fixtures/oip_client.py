"""Drive the course server with tritonclient, the Open Inference Protocol's reference client.

Runs in .oip-venv (no TensorFlow, no course_lib): tests/test_serving_oip.py starts it with the
server's REST address and a JSON file of inputs, and compares what it prints (one JSON object)
with answers computed from the models' weights.

    .oip-venv/bin/python oip_client.py 127.0.0.1:8501 inputs.json
"""

# pyright: reportMissingImports=false
# (tritonclient lives in .oip-venv, not in .venv where pyright looks)

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def tensor(name, array, datatype, binary=False):
    entry = httpclient.InferInput(name, list(array.shape), datatype)
    entry.set_data_from_numpy(array, binary_data=binary)
    return entry


def text(value):
    """A BYTES element as text (tritonclient gives bytes from binary outputs, str from JSON ones)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def failure(call):
    """(status, message) of a call that must fail."""
    try:
        call()
    except InferenceServerException as error:
        return {"status": error.status(), "message": error.message()}
    return {"status": "no error"}


def main(url, inputs_path):
    with open(inputs_path) as file:
        given = json.load(file)
    client = httpclient.InferenceServerClient(url=url)
    out = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "clf_ready": client.is_model_ready("clf"),
        "clf_v1_ready": client.is_model_ready("clf", "1"),
        "unknown_ready": client.is_model_ready("nope"),
        "server": client.get_server_metadata(),
        "metadata": client.get_model_metadata("mixed"),
        "clf_metadata": client.get_model_metadata("clf", "1"),
    }
    x = np.array(given["x"], np.float32)
    result = client.infer(
        "clf", [tensor("x", x, "FP32")], outputs=[httpclient.InferRequestedOutput("probs", binary_data=False)]
    )
    out["probs"] = result.as_numpy("probs").tolist()

    weights = np.array(given["weights"], np.float32)
    counts = np.array(given["counts"], np.int64)
    tag = np.array([t.encode() for t in given["tag"]], dtype=np.object_)
    inputs = [tensor("weights", weights, "FP32"), tensor("counts", counts, "INT64"), tensor("tag", tag, "BYTES")]
    result = client.infer("mixed", inputs, model_version="1", request_id="req-7")  # all outputs
    response = result.get_response()
    out["mixed"] = {
        "id": response.get("id"),
        "model_name": response.get("model_name"),
        "model_version": response.get("model_version"),
        "weighted": result.as_numpy("weighted").tolist(),
        "weighted_dtype": str(result.as_numpy("weighted").dtype),
        "total": result.as_numpy("total").tolist(),
        "total_dtype": str(result.as_numpy("total").dtype),
        "tagged": [text(v) for v in result.as_numpy("tagged").ravel()],
        "outputs": sorted(o["name"] for o in response["outputs"]),
    }
    # tritonclient's defaults: binary inputs (Triton's extension), outputs asked for in binary
    binary = [
        tensor("weights", weights, "FP32", True),
        tensor("counts", counts, "INT64", True),
        tensor("tag", tag, "BYTES", True),
    ]
    result = client.infer("mixed", binary)
    out["binary"] = {name: result.as_numpy(name).tolist() for name in ("weighted", "total")}
    out["binary"]["tagged"] = [text(v) for v in result.as_numpy("tagged").ravel()]
    only_total = client.infer("mixed", inputs, outputs=[httpclient.InferRequestedOutput("total", binary_data=False)])
    out["only_total"] = sorted(o["name"] for o in only_total.get_response()["outputs"])

    out["errors"] = {
        "wrong_datatype": failure(lambda: client.infer("clf", [tensor("x", x.astype(np.float64), "FP64")])),
        "unknown_model": failure(lambda: client.infer("nope", [tensor("x", x, "FP32")])),
        "wrong_shape": failure(lambda: client.infer("clf", [tensor("x", x[:, :3], "FP32")])),
        "not_a_number": failure(lambda: client.infer("clf", [tensor("x", np.array([["a"] * 4], object), "BYTES")])),
        "unknown_metadata": failure(lambda: client.get_model_metadata("nope")),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
