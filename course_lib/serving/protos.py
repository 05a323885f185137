"""TF Serving config messages that `tensorflow-serving-api` does not ship, rebuilt from their fields.

TF Serving reads BatchingParameters, SSLConfig and MonitoringConfig as text protobufs. The pip
package lacks their `_pb2` modules, so each is rebuilt here from a descriptor with the same field
names and numbers as the `.proto` in TF Serving 2.20, and the file is parsed by protobuf's
`text_format`, exactly as TF Serving parses it (a typo is an error, not a silently ignored line).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

PACKAGE = "tensorflow.serving"
_FIELD = descriptor_pb2.FieldDescriptorProto
SCALAR_TYPES = {"string": _FIELD.TYPE_STRING, "bool": _FIELD.TYPE_BOOL, "int64": _FIELD.TYPE_INT64}

# (message name, [(field name, number, type, repeated)]); a type not in SCALAR_TYPES names a message.
Fields = Sequence[tuple[str, int, str, bool]]


def message_classes(file_name: str, messages: Sequence[tuple[str, Fields]]) -> dict[str, type]:
    """Build the messages of one .proto file (package tensorflow.serving) and return their classes by name."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"course_lib/serving/{file_name}",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    for name, fields in messages:
        message = proto.message_type.add(name=name)
        for field_name, number, type_name, repeated in fields:
            label = _FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL
            if type_name in SCALAR_TYPES:
                message.field.add(name=field_name, number=number, type=SCALAR_TYPES[type_name], label=label)
            else:
                message.field.add(
                    name=field_name, number=number, type=_FIELD.TYPE_MESSAGE, type_name=type_name, label=label
                )
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name, _ in messages
    }


def batching_parameters_class() -> type:
    """BatchingParameters (session_bundle_config.proto)."""
    try:  # the real message, when a future tensorflow-serving-api ships it
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2  # type: ignore

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    int64, string, boolean = ".google.protobuf.Int64Value", ".google.protobuf.StringValue", ".google.protobuf.BoolValue"
    fields = [
        ("max_batch_size", 1, int64, False),
        ("batch_timeout_micros", 2, int64, False),
        ("max_enqueued_batches", 3, int64, False),
        ("num_batch_threads", 4, int64, False),
        ("thread_pool_name", 5, string, False),
        ("allowed_batch_sizes", 6, "int64", True),
        ("pad_variable_length_inputs", 7, "bool", False),
        ("enable_large_batch_splitting", 8, boolean, False),
        ("max_execution_batch_size", 9, int64, False),
    ]
    return message_classes("batching_parameters.proto", [("BatchingParameters", fields)])["BatchingParameters"]


def ssl_config_class() -> type:
    """SSLConfig (ssl_config.proto): PEM texts, not file names, as in TF Serving."""
    fields = [
        ("server_key", 1, "string", False),
        ("server_cert", 2, "string", False),
        ("custom_ca", 3, "string", False),
        ("client_verify", 4, "bool", False),
    ]
    return message_classes("ssl_config.proto", [("SSLConfig", fields)])["SSLConfig"]


def monitoring_config_class() -> type:
    """MonitoringConfig (monitoring_config.proto): prometheus_config { enable: true path: "..." }."""
    classes = message_classes(
        "monitoring_config.proto",
        [
            ("PrometheusConfig", [("enable", 1, "bool", False), ("path", 2, "string", False)]),
            ("MonitoringConfig", [("prometheus_config", 1, f".{PACKAGE}.PrometheusConfig", False)]),
        ],
    )
    return classes["MonitoringConfig"]
