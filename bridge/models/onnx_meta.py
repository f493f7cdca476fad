"""Read the input and output signature of an ONNX file without the `onnx` package.

The core install has only onnxruntime, and building an InferenceSession just to learn output names
loads every weight. An ONNX file is a protobuf ``ModelProto``; the graph's inputs and outputs are a
few small messages among the (large, length-prefixed) initializers, so a minimal wire-format walk
over a memory map finds them in milliseconds and copies only the small parts.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import ModelError

# Field numbers: ModelProto.graph, GraphProto.{initializer,input,output}, TensorProto.name,
# ValueInfoProto.{name,type}, TypeProto.tensor_type, its elem_type/shape, TensorShapeProto.dim
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_GRAPH_INPUT = 11
_GRAPH_OUTPUT = 12
_TENSOR_NAME = 8
_VALUE_NAME = 1
_VALUE_TYPE = 2
_TYPE_TENSOR = 1
_TENSOR_ELEM_TYPE = 1
_TENSOR_SHAPE = 2
_SHAPE_DIM = 1
_DIM_VALUE = 1
_DIM_PARAM = 2

_ELEM_TYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}

Dim = int | str | None


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, element type and shape (int, symbolic name or unknown)."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None

    def describe(self) -> str:
        dims = (
            "?"
            if self.shape is None
            else ", ".join("?" if d is None else str(d) for d in self.shape)
        )
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class OnnxSignature:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def output(self, name: str) -> TensorInfo:
        for info in self.outputs:
            if info.name == name:
                return info
        raise KeyError(name)


class _WireError(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, value or payload start, payload end) for one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _WireError("field runs past the end of its message")
            yield number, wire, pos, pos + length
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
    if pos != end:
        raise _WireError("message overruns its length")


def _string(buf: memoryview, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def _shape(buf: memoryview, start: int, end: int) -> tuple[Dim, ...]:
    dims: list[Dim] = []
    for number, wire, a, b in _fields(buf, start, end):
        if number != _SHAPE_DIM or wire != 2:
            continue
        dim: Dim = None
        for dnum, dwire, da, db in _fields(buf, a, b):
            if dnum == _DIM_VALUE and dwire == 0:
                dim = da
            elif dnum == _DIM_PARAM and dwire == 2:
                dim = _string(buf, da, db)
        dims.append(dim)
    return tuple(dims)


def _value_info(buf: memoryview, start: int, end: int) -> TensorInfo:
    name = ""
    dtype = "unknown"
    shape: tuple[Dim, ...] | None = None
    for number, wire, a, b in _fields(buf, start, end):
        if number == _VALUE_NAME and wire == 2:
            name = _string(buf, a, b)
        elif number == _VALUE_TYPE and wire == 2:
            for tnum, twire, ta, tb in _fields(buf, a, b):
                if tnum != _TYPE_TENSOR or twire != 2:
                    dtype = "non-tensor"
                    continue
                for enum, ewire, ea, eb in _fields(buf, ta, tb):
                    if enum == _TENSOR_ELEM_TYPE and ewire == 0:
                        dtype = _ELEM_TYPES.get(ea, f"type{ea}")
                    elif enum == _TENSOR_SHAPE and ewire == 2:
                        shape = _shape(buf, ea, eb)
    return TensorInfo(name=name, dtype=dtype, shape=shape)


def _initializer_name(buf: memoryview, start: int, end: int) -> str | None:
    for number, wire, a, b in _fields(buf, start, end):
        if number == _TENSOR_NAME and wire == 2:
            return _string(buf, a, b)
    return None


def _parse(buf: memoryview) -> OnnxSignature:
    graph: tuple[int, int] | None = None
    for number, wire, a, b in _fields(buf, 0, len(buf)):
        if number == _MODEL_GRAPH and wire == 2:
            graph = (a, b)
    if graph is None:
        raise _WireError("no graph in the file")
    inputs: list[TensorInfo] = []
    outputs: list[TensorInfo] = []
    initializers: set[str] = set()
    for number, wire, a, b in _fields(buf, *graph):
        if wire != 2:
            continue
        if number == _GRAPH_INPUT:
            inputs.append(_value_info(buf, a, b))
        elif number == _GRAPH_OUTPUT:
            outputs.append(_value_info(buf, a, b))
        elif number == _GRAPH_INITIALIZER:
            init_name = _initializer_name(buf, a, b)
            if init_name:
                initializers.add(init_name)
    # Old exports (IR < 4) also list every weight as a graph input; those are not feeds.
    feeds = tuple(t for t in inputs if t.name not in initializers)
    return OnnxSignature(inputs=feeds, outputs=tuple(outputs))


def read_signature(path: Path) -> OnnxSignature:
    """Inputs (weights excluded) and outputs of the ONNX graph in ``path``; ModelError if bad."""
    try:
        with (
            path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        ):
            view = memoryview(mm)
            try:
                return _parse(view)
            finally:
                view.release()
    except (OSError, ValueError, _WireError) as exc:
        raise ModelError(f"{path} is not a readable ONNX model: {exc}") from exc
