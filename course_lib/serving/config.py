"""Command-line flags, `models.config` and batching parameters, read the way TF Serving reads them.

The flags are `tensorflow_model_server`'s own (same names, same `--flag=value` spelling), so one
command line works against both servers. Config files are text protobufs parsed with
`google.protobuf.text_format` into TF Serving's own message types, never by hand.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from course_lib.errors import CourseError
from course_lib.serving.observe import PROMETHEUS_PATH
from course_lib.serving.protos import batching_parameters_class, monitoring_config_class, ssl_config_class
from course_lib.serving.warmup import WarmupOptions

log = logging.getLogger("course_lib.serving")

DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024

# Every flag of tensorflow_model_server 2.20 (tensorflow_serving/model_servers/main.cc, in its order).
# tests/test_serving_flags.py holds the same list: each is accepted, by name, on this server's command line.
TF_SERVING_FLAGS = (
    "port", "grpc_socket_path", "rest_api_port", "rest_api_num_threads", "rest_api_timeout_in_ms",
    "rest_api_enable_cors_support", "enable_batching", "allow_version_labels_for_unavailable_models",
    "batching_parameters_file", "enable_per_model_batching_parameters", "model_config_file",
    "model_config_file_poll_wait_seconds", "model_name", "model_base_path", "num_load_threads",
    "num_unload_threads", "max_num_load_retries", "load_retry_interval_micros", "file_system_poll_wait_seconds",
    "flush_filesystem_caches", "tensorflow_session_parallelism", "tensorflow_session_config_file",
    "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism", "use_alts_credentials",
    "ssl_config_file", "platform_config_file", "per_process_gpu_memory_fraction", "saved_model_tags",
    "grpc_channel_arguments", "grpc_max_threads", "enable_model_warmup", "num_request_iterations_for_warmup",
    "version", "monitoring_config_file", "remove_unused_fields_from_bundle_metagraph", "prefer_tflite_model",
    "num_tflite_pools", "num_tflite_interpreters_per_pool", "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled", "xla_gpu_compilation_enabled", "enable_profiler",
    "thread_pool_factory_config_file", "mixed_precision", "skip_initialize_tpu", "enable_grpc_healthcheck_service",
    "enable_serialization_as_tensor_content",
)  # fmt: skip

# Flags this server accepts and does not act on: none changes security or what a client receives
# (each gets a log line at start). docs/serving.md says, flag by flag, what happens instead.
IGNORED_FLAGS = (
    "rest_api_num_threads",
    "grpc_channel_arguments",
    "num_load_threads",
    "num_unload_threads",
    "max_num_load_retries",
    "load_retry_interval_micros",
    "flush_filesystem_caches",
    "platform_config_file",
    "enable_profiler",
    "mixed_precision",
    "skip_initialize_tpu",
    "prefer_tflite_model",
    "tensorflow_session_parallelism",
    "tensorflow_session_config_file",
    "thread_pool_factory_config_file",
    "per_process_gpu_memory_fraction",
    "enable_per_model_batching_parameters",
    "enable_signature_method_name_check",
    "remove_unused_fields_from_bundle_metagraph",
    "num_tflite_pools",
    "num_tflite_interpreters_per_pool",
    "xla_cpu_compilation_enabled",
    "xla_gpu_compilation_enabled",
)


def parse_bool(text: str | bool) -> bool:
    """TF-style boolean flag values: `--flag`, `--flag=true`, `--flag=false`, `--flag=0`."""
    if isinstance(text, bool):
        return text
    lowered = text.strip().lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class BatchingOptions:
    """The BatchingParameters fields this server honours (TF Serving's defaults when unset)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise CourseError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            raise CourseError(f"batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
        if self.num_batch_threads < 1:
            raise CourseError(f"num_batch_threads must be at least 1, got {self.num_batch_threads}")
        if self.max_enqueued_batches < 1:
            raise CourseError(f"max_enqueued_batches must be at least 1, got {self.max_enqueued_batches}")
        if self.allowed_batch_sizes:
            sizes = list(self.allowed_batch_sizes)
            if sizes != sorted(set(sizes)) or sizes[0] < 1:
                raise CourseError(f"allowed_batch_sizes must be increasing positive numbers, got {sizes}")
            if sizes[-1] != self.max_batch_size:
                raise CourseError(
                    "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                    f"{sizes[-1]}; expected {self.max_batch_size}"
                )


@dataclass(frozen=True)
class SslOptions:
    """SSLConfig, as TF Serving applies it to gRPC: PEM texts of the key, certificate and client CA."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False


@dataclass
class ServerOptions:
    """Everything the server needs to start, read from flags."""

    model_config: model_server_config_pb2.ModelServerConfig
    grpc_port: int = DEFAULT_GRPC_PORT
    rest_api_port: int = DEFAULT_REST_PORT
    host: str = "127.0.0.1"
    rest_api_timeout_in_ms: int = 30000
    file_system_poll_wait_seconds: float = 1.0
    model_config_file: str | None = None
    model_config_file_poll_wait_seconds: float = 0.0
    batching: BatchingOptions | None = None
    enable_cors: bool = False
    saved_model_tags: tuple[str, ...] = ("serve",)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    grpc_max_threads: int = 32
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    tensor_content: bool = False  # --enable_serialization_as_tensor_content: gRPC outputs as raw bytes
    ssl: SslOptions | None = None  # --ssl_config_file: gRPC over TLS
    grpc_socket_path: str = ""  # --grpc_socket_path: gRPC on a UNIX socket too
    metrics_path: str | None = None  # --monitoring_config_file with prometheus_config { enable: true }
    health_service: bool = False  # --enable_grpc_healthcheck_service: grpc.health.v1.Health
    access_log_file: str = ""  # --access_log_file (not a TF Serving flag): one line per request
    warmup: WarmupOptions = field(default_factory=WarmupOptions)  # --enable_model_warmup, --num_request_...
    ignored_flags: dict[str, str] = field(default_factory=dict)


def build_flag_parser() -> argparse.ArgumentParser:
    """The flags of `tensorflow_model_server`, plus `--host` and `--max_request_bytes`."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.serving",
        description="A TF-Serving-compatible model server (REST and gRPC) for the course.",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--port", type=int, default=DEFAULT_GRPC_PORT, help="gRPC port (0 disables gRPC)")
    add("--rest_api_port", type=int, default=DEFAULT_REST_PORT, help="REST port (0 disables REST)")
    add("--host", default="127.0.0.1", help="address to bind (not a TF Serving flag; it binds 0.0.0.0)")
    add("--model_name", default="default", help="name of the model (with --model_base_path)")
    add("--model_base_path", default="", help="folder holding the model's numbered version folders")
    add("--model_config_file", default="", help="text-protobuf ModelServerConfig (models.config)")
    add(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="re-read --model_config_file this often (0: read once)",
    )
    add("--model_config_list_root_dir", default="", help="prefix for relative base_path entries")
    add(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="look for new or removed versions this often (0: once at start; <0: never)",
    )
    add("--rest_api_timeout_in_ms", type=int, default=30000, help="deadline of one REST request")
    add("--rest_api_enable_cors_support", type=parse_bool, nargs="?", const=True, default=False)
    add("--enable_batching", type=parse_bool, nargs="?", const=True, default=False)
    add("--batching_parameters_file", default="", help="text-protobuf BatchingParameters")
    add(
        "--allow_version_labels_for_unavailable_models",
        type=parse_bool,
        nargs="?",
        const=True,
        default=False,
        help="accepted; this server resolves labels when a request arrives",
    )
    add("--saved_model_tags", default="serve", help="comma-separated MetaGraph tags to load")
    add(
        "--grpc_max_threads",
        type=int,
        default=max(32, 4 * (os.cpu_count() or 1)),
        help="caps gRPC requests in flight at 4x this number (gRPC runs on the event loop, no thread per request)",
    )
    add("--tensorflow_intra_op_parallelism", type=int, default=0)
    add("--tensorflow_inter_op_parallelism", type=int, default=0)
    add(
        "--max_request_bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest request body (REST) or message (gRPC) accepted; not a TF Serving flag",
    )
    add("--version", action="store_true", help="print the version and exit")
    add(
        "--ssl_config_file", default="", help="text-protobuf SSLConfig: serve gRPC over TLS (mutual with client_verify)"
    )
    add("--grpc_socket_path", default="", help="also serve gRPC on this UNIX socket")
    add(
        "--monitoring_config_file",
        default="",
        help="text-protobuf MonitoringConfig: Prometheus metrics on the REST port",
    )
    add(
        "--enable_grpc_healthcheck_service",
        type=parse_bool,
        nargs="?",
        const=True,
        default=False,
        help="serve grpc.health.v1.Health (ModelService and PredictionService SERVING once loaded)",
    )
    add("--enable_model_warmup", type=parse_bool, nargs="?", const=True, default=True,
        help="replay assets.extra/tf_serving_warmup_requests before a version is AVAILABLE")  # fmt: skip
    add("--num_request_iterations_for_warmup", type=int, default=1, help="times each warm-up record runs")
    add("--access_log_file", default="", help="append one line per request to this file (not a TF Serving flag)")
    add("--use_alts_credentials", type=parse_bool, nargs="?", const=True, default=False, help=argparse.SUPPRESS)
    add(
        "--enable_serialization_as_tensor_content",
        type=parse_bool,
        nargs="?",
        const=True,
        default=False,
        help="gRPC Predict outputs in tensor_content (raw bytes) instead of the typed fields (float_val ...)",
    )
    for name in IGNORED_FLAGS:
        add(f"--{name}", default=None, nargs="?", const="true", help=argparse.SUPPRESS)
    return parser


def parse_model_config_text(text: str, source: str = "<text>") -> model_server_config_pb2.ModelServerConfig:
    """Parse a `models.config` text protobuf into TF Serving's ModelServerConfig and check it."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise CourseError(
            f"{source} is not a valid ModelServerConfig text protobuf: {exc}. Expected the form "
            "model_config_list { config { name: 'm' base_path: '/models/m' model_platform: 'tensorflow' } }"
        ) from None
    validate_model_config(config, source)
    return config


def load_model_config_file(path: str | os.PathLike, root_dir: str = "") -> model_server_config_pb2.ModelServerConfig:
    """Read `--model_config_file`; relative base paths are taken from `root_dir`, else the working folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CourseError(f"Cannot read --model_config_file {path}: {exc.strerror}") from None
    config = parse_model_config_text(text, str(path))
    base = Path(root_dir) if root_dir else Path.cwd()
    for model in config.model_config_list.config:
        if not os.path.isabs(model.base_path):
            model.base_path = str((base / model.base_path).resolve())
    return config


def single_model_config(model_name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config `--model_name`/`--model_base_path` stand for: one model, latest version."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = str(Path(base_path).resolve())
    model.model_platform = "tensorflow"
    validate_model_config(config, "--model_base_path")
    return config


def validate_model_config(config: model_server_config_pb2.ModelServerConfig, source: str) -> None:
    """Reject what TF Serving would reject: no models, unnamed models, duplicates, other platforms."""
    if config.WhichOneof("config") == "custom_model_config":
        raise CourseError(f"{source}: custom_model_config is not supported; use model_config_list")
    models = config.model_config_list.config
    if not models:
        raise CourseError(f"{source}: model_config_list has no config entries")
    seen: set[str] = set()
    for model in models:
        if not model.name:
            raise CourseError(f"{source}: every config needs a name")
        if model.name in seen:
            raise CourseError(f"{source}: model name {model.name!r} appears twice")
        seen.add(model.name)
        if not model.base_path:
            raise CourseError(f"{source}: model {model.name!r} has no base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise CourseError(
                f"{source}: model {model.name!r} has model_platform {model.model_platform!r}; "
                "this server serves only 'tensorflow' SavedModels"
            )
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise CourseError(f"{source}: model {model.name!r} has a specific policy with no versions")
        if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
            raise CourseError(f"{source}: model {model.name!r}: latest.num_versions must be >= 1")


def parse_batching_parameters(text: str, source: str = "<text>") -> BatchingOptions:
    """Parse a BatchingParameters text protobuf (`max_batch_size { value: 32 }` ...)."""
    params = batching_parameters_class()()
    try:
        text_format.Parse(text, params)
    except text_format.ParseError as exc:
        raise CourseError(
            f"{source} is not a valid BatchingParameters text protobuf: {exc}. "
            "Expected lines like: max_batch_size { value: 32 }  batch_timeout_micros { value: 1000 }"
        ) from None
    defaults = BatchingOptions()
    for unsupported in ("enable_large_batch_splitting", "max_execution_batch_size", "thread_pool_name"):
        if params.HasField(unsupported):
            log.info("Batching parameter %s is accepted but not used by this server", unsupported)
    if params.pad_variable_length_inputs:
        log.info(
            "Batching parameter pad_variable_length_inputs is not supported: requests of "
            "different shapes are batched separately"
        )

    def value(name: str, default: int) -> int:
        return getattr(params, name).value if params.HasField(name) else default

    return BatchingOptions(
        max_batch_size=value("max_batch_size", defaults.max_batch_size),
        batch_timeout_micros=value("batch_timeout_micros", defaults.batch_timeout_micros),
        max_enqueued_batches=value("max_enqueued_batches", defaults.max_enqueued_batches),
        num_batch_threads=value("num_batch_threads", defaults.num_batch_threads),
        allowed_batch_sizes=tuple(params.allowed_batch_sizes),
    )


def load_batching_parameters_file(path: str | os.PathLike) -> BatchingOptions:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CourseError(f"Cannot read --batching_parameters_file {path}: {exc.strerror}") from None
    return parse_batching_parameters(text, str(path))


def _read_text_proto(path: str | os.PathLike, flag: str, message, expected: str):
    """Read the text-protobuf file a flag names into `message`; CourseError says what the file should hold."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CourseError(f"Cannot read {flag} {path}: {exc.strerror}") from None
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise CourseError(
            f"{path} is not a valid {message.DESCRIPTOR.name} text protobuf: {exc}. Expected: {expected}"
        ) from None
    return message


def load_ssl_config_file(path: str | os.PathLike) -> SslOptions:
    """Read `--ssl_config_file` (SSLConfig text protobuf); refuse one that would not secure anything."""
    config = _read_text_proto(
        path,
        "--ssl_config_file",
        ssl_config_class()(),
        "server_key: '<PEM text>' server_cert: '<PEM text>' custom_ca: '<PEM text>' client_verify: true",
    )
    missing = [name for name in ("server_key", "server_cert") if not getattr(config, name).strip()]
    if missing:
        raise CourseError(
            f"{path}: {' and '.join(missing)} is empty: TLS needs the server's key and certificate (PEM text)"
        )
    if config.client_verify and not config.custom_ca.strip():
        raise CourseError(
            f"{path}: client_verify is true but custom_ca is empty: give the CA that signs client certificates"
        )
    return SslOptions(config.server_key, config.server_cert, config.custom_ca, config.client_verify)


def load_monitoring_config_file(path: str | os.PathLike) -> str | None:
    """The Prometheus path `--monitoring_config_file` enables (TF Serving's default path when unset), or None."""
    config = _read_text_proto(
        path,
        "--monitoring_config_file",
        monitoring_config_class()(),
        'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }',
    )
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    path_text = prometheus.path or PROMETHEUS_PATH
    if not path_text.startswith("/") or path_text.startswith("/v1/"):
        raise CourseError(f"{path}: prometheus_config.path must start with / and lie outside /v1/, got {path_text!r}")
    return path_text


def parse_server_flags(argv: Sequence[str]) -> ServerOptions:
    """Turn a `tensorflow_model_server` command line into ServerOptions (CourseError when wrong)."""
    parser = build_flag_parser()
    args, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise CourseError(
            f"Unknown flags: {' '.join(unknown)}. Flags are tensorflow_model_server's, e.g. "
            "--port=8500 --rest_api_port=8501 --model_name=m --model_base_path=/models/m"
        )
    if args.model_config_file:
        if args.model_base_path:
            log.info("--model_config_file is set: ignoring --model_base_path and --model_name")
        config = load_model_config_file(args.model_config_file, args.model_config_list_root_dir)
    elif args.model_base_path:
        config = single_model_config(args.model_name, args.model_base_path)
    else:
        raise CourseError(
            "Both --model_base_path and --model_config_file are empty: give "
            "--model_name=NAME --model_base_path=/path/to/NAME or --model_config_file=models.config"
        )
    batching = None
    if args.enable_batching:
        batching = (
            load_batching_parameters_file(args.batching_parameters_file)
            if args.batching_parameters_file
            else BatchingOptions()
        )
    elif args.batching_parameters_file:
        raise CourseError("--batching_parameters_file is set without --enable_batching=true")
    for port_flag in ("port", "rest_api_port"):
        port = getattr(args, port_flag)
        if not 0 <= port <= 65535:
            raise CourseError(f"--{port_flag} must be between 0 and 65535, got {port}")
    if args.port and args.port == args.rest_api_port:
        raise CourseError(f"--port and --rest_api_port must differ (both are {args.port})")
    if args.port == 0 and args.rest_api_port == 0:
        raise CourseError("Both --port and --rest_api_port are 0: nothing to serve on")
    if args.grpc_max_threads < 1:
        raise CourseError(f"--grpc_max_threads must be at least 1, got {args.grpc_max_threads}")
    if args.max_request_bytes < 1024:
        raise CourseError(f"--max_request_bytes must be at least 1024, got {args.max_request_bytes}")
    if args.use_alts_credentials:
        raise CourseError(
            "--use_alts_credentials asks for ALTS (Google Cloud's transport security), which this server cannot "
            "provide: use --ssl_config_file for TLS, or the real tensorflow_model_server on Google Cloud"
        )
    ssl = load_ssl_config_file(args.ssl_config_file) if args.ssl_config_file else None
    if args.num_request_iterations_for_warmup < 1:
        raise CourseError(
            f"--num_request_iterations_for_warmup must be at least 1, got {args.num_request_iterations_for_warmup}"
        )
    ignored = {name: getattr(args, name) for name in IGNORED_FLAGS if getattr(args, name) is not None}
    tags = tuple(tag.strip() for tag in args.saved_model_tags.split(",") if tag.strip())
    return ServerOptions(
        model_config=config,
        grpc_port=args.port,
        rest_api_port=args.rest_api_port,
        host=args.host,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        model_config_file=args.model_config_file or None,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        batching=batching,
        enable_cors=args.rest_api_enable_cors_support,
        saved_model_tags=tags or ("serve",),
        max_request_bytes=args.max_request_bytes,
        grpc_max_threads=args.grpc_max_threads,
        intra_op_threads=args.tensorflow_intra_op_parallelism,
        inter_op_threads=args.tensorflow_inter_op_parallelism,
        tensor_content=args.enable_serialization_as_tensor_content,
        ssl=ssl,
        grpc_socket_path=args.grpc_socket_path,
        metrics_path=load_monitoring_config_file(args.monitoring_config_file) if args.monitoring_config_file else None,
        health_service=args.enable_grpc_healthcheck_service,
        access_log_file=args.access_log_file,
        warmup=WarmupOptions(args.enable_model_warmup, args.num_request_iterations_for_warmup),
        ignored_flags=ignored,
    )
