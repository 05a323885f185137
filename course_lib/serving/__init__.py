"""A TF-Serving-compatible model server for the course, its clients, and an exporter.

    from course_lib.serving import export_model, serve, RestClient, GrpcClient
    export_model(model, "serving_models/mnist", version=1)
    with serve("mnist", "serving_models/mnist") as server:
        RestClient(server.rest_url, "mnist").predict(instances=x[:2])

`serve` launches `tensorflow_model_server` when it is installed and this package's own server
(`python -m course_lib.serving`, same flags, same REST and gRPC APIs) when it is not.
Names are imported on first use, so `import course_lib.serving` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "export_model": "course_lib.serving.export",
    "CLASSIFY_SIGNATURE": "course_lib.serving.export",
    "REGRESS_SIGNATURE": "course_lib.serving.export",
    "serve": "course_lib.serving.launcher",
    "ServerHandle": "course_lib.serving.launcher",
    "find_model_server": "course_lib.serving.launcher",
    "RestClient": "course_lib.serving.client",
    "GrpcClient": "course_lib.serving.client",
    "tls_credentials": "course_lib.serving.client",
    "wait_for_server": "course_lib.serving.client",
    "ServingError": "course_lib.serving.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'course_lib.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
