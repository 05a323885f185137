"""One error type for the server and its clients, carrying a gRPC status code.

TF Serving answers every failure with a canonical status code; REST maps it to an HTTP status
(``http_server.cc``'s ``ToHTTPStatusCode``) and gRPC sends it as is. Keeping the code on the
exception lets the REST and gRPC front ends report the same failure the same way.
"""

from __future__ import annotations

import grpc

from course_lib.errors import CourseError

# TF Serving's mapping from canonical status codes to HTTP status codes.
HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class ServingError(CourseError):
    """A request the server cannot answer: a status code plus a message that says why.

    ``http_status`` overrides the mapped HTTP status for the few REST-only failures (for example
    413 for a body over the size limit) that have no gRPC counterpart of their own.
    """

    def __init__(self, code: grpc.StatusCode, message: str, *, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API sends for this error."""
        return self._http_status or HTTP_STATUS_BY_CODE.get(self.code, 500)

    @property
    def code_name(self) -> str:
        """The canonical code's name, e.g. ``NOT_FOUND`` (what TF Serving's status JSON shows)."""
        return self.code.name

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unimplemented(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNIMPLEMENTED, message)


def unavailable(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)
