"""Builders for the model-store tests: tiny ONNX graphs, model zips and a local HTTP zip server."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

Shape = Sequence[int | str]


def tiny_onnx_bytes(
    *,
    inputs: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids"),
    outputs: Sequence[tuple[str, Shape]] = (("logits", ("batch", 1)),),
    ir_version: int = 8,
    weights_as_inputs: bool = False,
) -> bytes:
    """A valid ONNX model with the given feeds and declared outputs (a trivial graph)."""
    feeds = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in inputs]
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    nodes = [helper.make_node("Cast", [inputs[0]], ["as_float"], to=TensorProto.FLOAT)]
    results = []
    for index, (name, shape) in enumerate(outputs):
        nodes.append(helper.make_node("Mul", ["as_float", "w"], [f"m{index}"]))
        nodes.append(helper.make_node("Identity", [f"m{index}"], [name]))
        results.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
    graph_inputs = list(feeds)
    if weights_as_inputs:  # the IR < 4 habit of listing weights as graph inputs
        graph_inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(nodes, "tiny", graph_inputs, results, initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir_version
    data: bytes = model.SerializeToString()
    return data


def tiny_onnx(path: Path, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny_onnx_bytes(**kwargs))
    return path


CROSS_CONFIG = {"architectures": ["BertForSequenceClassification"], "max_position_embeddings": 512}


def flashrank_files(onnx_name: str, *, config: dict[str, object] | None = None) -> dict[str, bytes]:
    """The files of a FlashRank model folder, with a real (tiny) ONNX graph."""
    return {
        onnx_name: tiny_onnx_bytes(inputs=("input_ids", "attention_mask")),
        "tokenizer.json": b"{}",
        "config.json": json.dumps(config or CROSS_CONFIG).encode(),
        "tokenizer_config.json": json.dumps({"model_max_length": 512}).encode(),
        "special_tokens_map.json": b"{}",
    }


def write_files(directory: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return directory


def model_zip(files: dict[str, bytes], *, folder: str | None) -> bytes:
    """A zip holding ``files`` under ``folder/`` (FlashRank's layout) or at the root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{folder}/{name}" if folder else name, data)
    return buffer.getvalue()


@dataclass
class Reply:
    """What the server does for one request: send ``body`` (cut after ``cut`` bytes if set)."""

    body: bytes
    status: int = 200
    cut: int | None = None
    delay_per_chunk: float = 0.0


@dataclass
class ZipServer:
    """A local HTTP server; each request takes the next Reply (the last one repeats)."""

    replies: list[Reply]
    url: str = ""
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            self.requests.append(path)
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def _handler(server_state: ZipServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reply = server_state.next_reply(self.path)
            self.send_response(reply.status)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            payload = reply.body if reply.cut is None else reply.body[: reply.cut]
            for start in range(0, len(payload), 4096):
                self.wfile.write(payload[start : start + 4096])
                if reply.delay_per_chunk:
                    self.wfile.flush()
                    time.sleep(reply.delay_per_chunk)
            if reply.cut is not None:
                self.wfile.flush()
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve(*replies: Reply) -> Iterator[ZipServer]:
    state = ZipServer(replies=list(replies))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
