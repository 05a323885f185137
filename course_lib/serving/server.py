"""Start the model server: load the models, open the REST and gRPC ports, poll, shut down cleanly.

Like `tensorflow_model_server`, the first load finishes before the ports open, so a client that
can connect finds the models loaded; then a background thread keeps polling the base paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

import grpc
from aiohttp import web

from course_lib.errors import CourseError
from course_lib.serving import config as config_module
from course_lib.serving.config import ServerOptions, SslOptions
from course_lib.serving.grpc_service import start_aio_server
from course_lib.serving.observe import RequestObserver
from course_lib.serving.registry import ModelRegistry
from course_lib.serving.rest import RestApi
from course_lib.serving.service import InferenceService

log = logging.getLogger("course_lib.serving")


def configure_tensorflow_threads(options: ServerOptions) -> None:
    import tensorflow as tf

    if options.intra_op_threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(options.intra_op_threads)
    if options.inter_op_threads > 0:
        tf.config.threading.set_inter_op_parallelism_threads(options.inter_op_threads)


class ConfigFileWatcher:
    """Re-reads --model_config_file and hands a changed model list to the registry."""

    def __init__(self, path: str, registry: ModelRegistry):
        self.path = path
        self.registry = registry
        self._last_text = Path(path).read_text()

    def __call__(self) -> None:
        text = Path(self.path).read_text()
        if text == self._last_text:
            return
        new_config = config_module.load_model_config_file(self.path)
        self._last_text = text
        log.info(
            "Model config file %s changed: applying %d model(s)", self.path, len(new_config.model_config_list.config)
        )
        self.registry.update_config(new_config)
        self.registry.poll_once()


async def _start_rest(options: ServerOptions, service: InferenceService) -> web.AppRunner:
    api = RestApi(
        service,
        timeout_ms=options.rest_api_timeout_in_ms,
        max_body_bytes=options.max_request_bytes,
        enable_cors=options.enable_cors,
        metrics_path=options.metrics_path,
    )
    runner = web.AppRunner(api.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.rest_api_port, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise CourseError(
            f"Cannot open the REST port {options.host}:{options.rest_api_port}: {exc.strerror}. "
            "Is another server running? Pick another --rest_api_port."
        ) from None
    log.info("Exporting HTTP/REST API at:%s:%d ...", options.host, options.rest_api_port)
    return runner


async def _start_grpc(options: ServerOptions, service: InferenceService) -> grpc.aio.Server:
    """gRPC on the event loop REST serves on (grpc.aio): no thread pool competing for the GIL."""
    credentials = server_credentials(options.ssl)
    addresses = [f"{options.host}:{options.grpc_port}"] if options.grpc_port else []
    if options.grpc_socket_path:
        addresses.append(f"unix:{options.grpc_socket_path}")
    try:
        server = await start_aio_server(
            addresses,
            service,
            max_request_bytes=options.max_request_bytes,
            max_concurrent_rpcs=options.grpc_max_threads * 4,
            credentials=credentials,
            tensor_content=options.tensor_content,
            health_service=options.health_service,
        )
    except OSError as exc:
        raise CourseError(f"Cannot open gRPC at {exc}. Is another server running? Pick another --port.") from None
    security = "TLS" + (" with client certificates" if options.ssl and options.ssl.client_verify else "")
    log.info("Running gRPC ModelServer at %s (%s) ...", ", ".join(addresses), security if credentials else "plaintext")
    return server


def server_credentials(ssl: SslOptions | None) -> grpc.ServerCredentials | None:
    """TF Serving's BuildServerCredentials: TLS from an SSLConfig, client certificates required when asked."""
    if ssl is None:
        return None
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() or None,
        require_client_auth=ssl.client_verify,
    )


async def run_server(
    options: ServerOptions, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set)."""
    configure_tensorflow_threads(options)
    for name, value in options.ignored_flags.items():
        log.info("Flag --%s=%s is accepted for compatibility with tensorflow_model_server and ignored", name, value)
    registry = ModelRegistry(options.model_config, options.saved_model_tags, warmup=options.warmup)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, registry.poll_once)
    threads = options.batching.num_batch_threads if options.batching else min(4, (os.cpu_count() or 1) + 1)
    observer = (
        RequestObserver(options.access_log_file or None) if options.metrics_path or options.access_log_file else None
    )
    service = InferenceService(registry, options.batching, num_threads=threads, observer=observer)
    if options.batching:
        log.info(
            "Batching enabled: max_batch_size=%d batch_timeout_micros=%d num_batch_threads=%d",
            options.batching.max_batch_size,
            options.batching.batch_timeout_micros,
            options.batching.num_batch_threads,
        )
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or Windows
            loop.add_signal_handler(sig, stop.set)
    rest_runner = grpc_server = None
    try:
        if options.grpc_port or options.grpc_socket_path:
            grpc_server = await _start_grpc(options, service)
        if options.rest_api_port:
            rest_runner = await _start_rest(options, service)
        watcher = (
            ConfigFileWatcher(options.model_config_file, registry)
            if options.model_config_file and options.model_config_file_poll_wait_seconds > 0
            else None
        )
        registry.start_polling(
            options.file_system_poll_wait_seconds, options.model_config_file_poll_wait_seconds, watcher
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("Shutting down")
    finally:
        registry.stop()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        if rest_runner is not None:
            await rest_runner.cleanup()
        if service.batcher is not None:
            log.info("Batching: %s", service.batcher.stats.summary())
        service.close()
        if observer is not None:
            observer.close()
