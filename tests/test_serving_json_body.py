"""The REST server's dense parse of big numeric bodies and the processes that run it (course_lib.serving.json_body)."""

import asyncio
import gc
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from course_lib.serving import json_body


def instances_of(doc: dict | None) -> np.ndarray:
    assert doc is not None, "the body was left to the full parse"
    return doc["instances"].array


@pytest.fixture
def codec_thread():
    """The server's codec threads, where bodies are parsed when no worker process can."""
    with ThreadPoolExecutor(1) as executor:
        yield executor


def test_a_worker_process_returns_the_document_with_its_array_made(codec_thread):
    decoders = json_body.DecodingProcesses(1, codec_thread)
    try:
        rows = np.random.default_rng(0).random((50, 4)).tolist()
        doc = asyncio.run(decoders.parse(json.dumps({"instances": rows, "signature_name": "s"}).encode()))
        assert doc is not None, "the worker left this plain numeric body to the server"
        assert doc["signature_name"] == "s"
        np.testing.assert_array_equal(doc["instances"].array, np.asarray(rows))
        assert asyncio.run(decoders.parse(b'{"instances": [[true]]}')) is None  # left to the server
        # the workers run with the collector off: what they make is acyclic
        assert decoders._executor().submit(gc.isenabled).result(timeout=30) is False
    finally:
        decoders.close()


def test_where_processes_cannot_start_the_server_parses_every_body_on_its_threads(monkeypatch, caplog, codec_thread):
    starts = []

    def no_processes(*args, **kwargs):
        starts.append(args)
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(json_body, "ProcessPoolExecutor", no_processes)
    decoders = json_body.DecodingProcesses(2, codec_thread)
    body = b'{"instances": [[1.0, 2.0]]}'
    for _ in range(2):
        np.testing.assert_array_equal(instances_of(asyncio.run(decoders.parse(body))), [[1.0, 2.0]])
    assert len(starts) == 1, "a second start was tried after the first failed"
    assert "Cannot start JSON decoding processes" in caplog.text


def test_zero_workers_means_no_process(monkeypatch, codec_thread):
    monkeypatch.setattr(json_body, "ProcessPoolExecutor", None)  # calling it would fail the test
    doc = asyncio.run(json_body.DecodingProcesses(0, codec_thread).parse(b'{"instances": [[1.0]]}'))
    np.testing.assert_array_equal(instances_of(doc), [[1.0]])


def test_workers_that_die_before_answering_once_are_not_started_again(monkeypatch, caplog, codec_thread):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    pools = []

    class DyingPool:
        def __init__(self, *args, **kwargs):
            pools.append(self)

        def submit(self, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("a child process terminated abruptly"))
            return future

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(json_body, "ProcessPoolExecutor", DyingPool)
    decoders = json_body.DecodingProcesses(2, codec_thread)
    body = b'{"instances": [[1.0, 2.0]]}'
    for _ in range(2):  # the bodies are parsed all the same, on the codec thread
        np.testing.assert_array_equal(instances_of(asyncio.run(decoders.parse(body))), [[1.0, 2.0]])
    assert len(pools) == 1
    assert "stopped before answering once" in caplog.text


def asarray_reference(body: bytes) -> dict | None:
    """What the dense parse must agree with: orjson's document and np.asarray of its one list."""
    doc = json_body.fast_loads(body)
    if b"true" in body or b"false" in body or not isinstance(doc, dict):
        return None
    keys = [key for key in json_body.TENSOR_KEYS if key in doc]
    if len(keys) != 1 or not isinstance(doc[keys[0]], list):
        return None
    try:
        array = np.asarray(doc[keys[0]])
    except (ValueError, TypeError, OverflowError):
        return None
    if array.dtype.kind not in "fiu" or array.size == 0:
        return None
    return {**doc, keys[0]: json_body.DenseValue(array)}


def random_list(rng, depth: int):
    """Nested lists of ints and floats, a fifth of them ragged or mixed in depth."""
    if depth == 0:
        if rng.random() < 0.4:
            return int(rng.integers(-(10**6), 10**6))
        return float(rng.random() * 10.0 ** rng.integers(-5, 5))
    size = int(rng.integers(1, 4))
    if rng.random() < 0.2:
        return [random_list(rng, int(rng.integers(0, depth))) for _ in range(size)]
    return [random_list(rng, depth - 1) for _ in range(size)]


def rectangular_list(rng):
    shape = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 5)))
    values = rng.random(shape)
    return (values * 1000).astype(int).tolist() if rng.random() < 0.3 else values.tolist()


def test_the_dense_parse_agrees_with_np_asarray_or_leaves_the_body_to_the_full_parse():
    """Seeded random bodies, rectangular and ragged: every array the dense parse makes is the one
    np.asarray makes (dtype, shape, values); it may decline a body (None), never answer differently."""
    rng = np.random.default_rng(18)
    made = 0
    for index in range(1500):
        value = rectangular_list(rng) if index % 2 else random_list(rng, int(rng.integers(1, 5)))
        body = json.dumps({"signature_name": "s", "instances": value}, indent=1 if index % 3 == 0 else None).encode()
        got, expected = json_body.parse_with_dense_value(body), asarray_reference(body)
        if got is None:
            continue
        made += 1
        assert expected is not None, f"made an array of a body np.asarray refuses: {body[:120]!r}"
        assert got["signature_name"] == "s"
        assert got["instances"].array.dtype == expected["instances"].array.dtype, body[:120]
        np.testing.assert_array_equal(got["instances"].array, expected["instances"].array, strict=True)
    assert made > 700, f"only {made} of 1,500 bodies took the dense parse: every rectangular one should"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"instances": [[true, 1]]}',  # numpy would make true a 1
        b'{"instances": [[1, 2]], "inputs": [[1, 2]]}',
        b'{"instances": [{"x": [1, 2]}]}',
        b'{"instances": ["a", "b"]}',
        b'{"instances": [[1, 2], [3]]}',
        b'{"instances": []}',
        b'{"instances": 3}',
        b'{"instances": [[NaN, 1]]}',  # orjson refuses NaN: json's parse, in the server
        b'{"instances": [[123456789012345678901, 1]]}',
        b'{"instances": [[1, 2]]',
        b"[1, 2]",
        b'{"instances": [[1, 2], [3], [4, 5, 6]]}',  # ragged with 3 x 2 numbers: as_buffer flattens it
        b'{"instances": [[1, 2], [[3], 4]]}',  # mixed depth, four numbers
        b'{"instances": [[]]}',
        b'{"instances": [9223372036854775808]}',  # past int64: numpy makes it uint64
        b'{"instances": [1.5, 123456789012345678901234567890]}',  # numpy: an object array
        b'{"instances": [1e400]}',
        b'{"instances": [01]}',
        b'{"instances": [1, null]}',
        b'{"instances": [[1]], "x": [2]}',  # the last ']' is another list's
        b'{"instances": [[1, 2]], "signature_name": "a]"}',
        b'{"signature_name": "[x]", "instances": [1, 2]}',  # the first '[' is in a string
        b'{"foo\\"instances": [[1]]}',  # the key's text ends a string, the list belongs to another key
        b'{"instances": [[1]], "instances": 5}',  # the last wins, in json and orjson
        b'{"instances": [[1, 2]], "signature_name": true}',
    ],
)
def test_the_dense_parse_declines_what_it_cannot_make_exactly(raw):
    assert json_body.parse_with_dense_value(raw) is None
