"""BVLC's Caffe GoogLeNet weights (bvlc_googlenet.caffemodel) for our `paper` variant.

A .caffemodel is a binary protobuf `NetParameter`. We read it through a few
messages declared here at run time (no protoc, no copy of Caffe's .proto): only
the fields we need, with Caffe's field numbers and types from BVLC's
src/caffe/proto/caffe.proto. Every other field is skipped by the parser as an
unknown field.

BVLC's layer names (conv1/7x7_s2, inception_3a/1x1, loss1/fc, loss3/classifier, ...)
are mapped onto our module names by walking the same layer plan the model is
built from, so the mapping cannot drift from the model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from torch import Tensor

from googlenet.arch.table import (
    AUX,
    ConvLayer,
    ConvRow,
    InceptionRow,
    LinearRow,
    aux_module_names,
    get_variant,
    layer_plan,
)
from googlenet.errors import ModelSourceError
from googlenet.model.network import build_network

# --- Preprocessing: BVLC trained and evaluated on images read by OpenCV (BGR), values in
# [0, 255], the per-channel mean subtracted (train_val.prototxt's mean_value: 104, 117, 123),
# no division. caffe_to_state_dict flips conv1's input channels to RGB, so the `caffe`
# preset (the same means in RGB order) is exactly BVLC's input.

# --- The protobuf messages (field numbers and types as in BVLC's caffe.proto).

_PACKAGE = "caffe"
_F = descriptor_pb2.FieldDescriptorProto
_V1_CONVOLUTION, _V1_INNER_PRODUCT = 4, 14  # V1LayerParameter.LayerType values
_DATA_FIELD, _DOUBLE_DATA_FIELD = 5, 8  # BlobProto.data, BlobProto.double_data


def _add_message(file: descriptor_pb2.FileDescriptorProto, name: str,
                 fields: Iterable[tuple[str, int, int, int, str | None]]) -> None:
    message = file.message_type.add(name=name)
    for field_name, number, field_type, label, type_name in fields:
        field = message.field.add(name=field_name, number=number, type=field_type, label=label)
        if type_name:
            field.type_name = f".{_PACKAGE}.{type_name}"
        if label == _F.LABEL_REPEATED and field_type not in (_F.TYPE_STRING, _F.TYPE_MESSAGE):
            field.options.packed = True  # as Caffe declares them; parsing accepts either encoding


def _caffe_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="googlenet/caffe_subset.proto", package=_PACKAGE,
                                              syntax="proto2")
    opt, rep, msg = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED, _F.TYPE_MESSAGE
    _add_message(file, "BlobShape", [("dim", 1, _F.TYPE_INT64, rep, None)])
    _add_message(file, "BlobProto", [
        ("num", 1, _F.TYPE_INT64, opt, None),
        ("channels", 2, _F.TYPE_INT64, opt, None),
        ("height", 3, _F.TYPE_INT64, opt, None),
        ("width", 4, _F.TYPE_INT64, opt, None),
        ("data", 5, _F.TYPE_FLOAT, rep, None),
        ("diff", 6, _F.TYPE_FLOAT, rep, None),
        ("shape", 7, msg, opt, "BlobShape"),
        ("double_data", 8, _F.TYPE_DOUBLE, rep, None),
    ])
    _add_message(file, "LayerParameter", [
        ("name", 1, _F.TYPE_STRING, opt, None),
        ("type", 2, _F.TYPE_STRING, opt, None),
        ("bottom", 3, _F.TYPE_STRING, rep, None),
        ("top", 4, _F.TYPE_STRING, rep, None),
        ("blobs", 7, msg, rep, "BlobProto"),
    ])
    _add_message(file, "V1LayerParameter", [
        ("bottom", 2, _F.TYPE_STRING, rep, None),
        ("top", 3, _F.TYPE_STRING, rep, None),
        ("name", 4, _F.TYPE_STRING, opt, None),
        ("type", 5, _F.TYPE_INT32, opt, None),  # an enum in Caffe: the same varint on the wire
        ("blobs", 6, msg, rep, "BlobProto"),
    ])
    _add_message(file, "NetParameter", [
        ("name", 1, _F.TYPE_STRING, opt, None),
        ("layers", 2, msg, rep, "V1LayerParameter"),  # legacy (V1) nets
        ("layer", 100, msg, rep, "LayerParameter"),
    ])
    return file


@functools.cache
def caffe_messages() -> dict[str, type]:
    """The message classes by name: BlobShape, BlobProto, LayerParameter, V1LayerParameter, NetParameter."""
    pool = descriptor_pool.DescriptorPool()  # our own pool: no clash with a real caffe_pb2
    file = _caffe_file()
    pool.Add(file)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{m.name}"))
            for m in file.message_type}


# --- Reading and writing .caffemodel files.


def _blob_to_array(blob: Any, where: str) -> np.ndarray:
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:  # legacy 4-D blob: fc weights are (1, 1, out, in), biases (1, 1, 1, n)
        shape = (blob.num, blob.channels, blob.height, blob.width)
    if len(blob.data):
        data = np.array(blob.data, dtype=np.float32)
    else:
        data = np.array(blob.double_data, dtype=np.float64)
    if data.size != math.prod(shape):
        raise ModelSourceError(f"{where}: blob has {data.size} values but shape {shape}")
    return data.reshape(shape)


def read_caffemodel(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> its blobs (weights, bias, ...) as arrays, for every layer that has blobs.

    Reads both the current `layer` field and the legacy V1 `layers` field.
    """
    path = Path(path)
    net = caffe_messages()["NetParameter"]()
    try:
        net.ParseFromString(path.read_bytes())
    except DecodeError as error:
        raise ModelSourceError(f"{path} is not a binary Caffe NetParameter (.caffemodel): {error}") from error
    blobs: dict[str, list[np.ndarray]] = {}
    for layer in [*net.layers, *net.layer]:
        if not layer.blobs:
            continue
        if layer.name in blobs:
            raise ModelSourceError(f"{path}: layer {layer.name!r} appears twice with blobs")
        blobs[layer.name] = [_blob_to_array(b, f"{path}: layer {layer.name!r}") for b in layer.blobs]
    if not blobs:
        raise ModelSourceError(f"{path} has no layers with blobs: not a binary .caffemodel "
                         "(a .prototxt holds the architecture only)")
    return blobs


def _fill_blob(blob: Any, array: np.ndarray, legacy: bool) -> None:
    if legacy:  # Caffe's old 4-D blobs: pad the shape with leading ones
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
    else:
        blob.shape.dim.extend(array.shape)
    if array.dtype == np.float64:
        blob.MergeFromString(_packed_field(_DOUBLE_DATA_FIELD, array.astype("<f8").tobytes()))
    else:
        blob.MergeFromString(_packed_field(_DATA_FIELD, array.astype("<f4").tobytes()))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _packed_field(number: int, payload: bytes) -> bytes:
    """A packed repeated field on the wire (tag, length, little-endian values).

    Millions of floats through `extend(list)` take seconds; merging the encoded
    bytes gives the same message in a fraction of that.
    """
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_caffemodel(path: str | Path, blobs: Mapping[str, list[np.ndarray]], legacy: bool = False,
                     name: str = "GoogleNet") -> None:
    """Write layer blobs as a binary NetParameter: `layer` with BlobShape, or legacy V1 `layers`."""
    messages = caffe_messages()
    net = messages["NetParameter"](name=name)
    for layer_name, arrays in blobs.items():
        arrays = [np.asarray(a) for a in arrays]
        layer = (net.layers if legacy else net.layer).add(name=layer_name)
        if arrays:  # the type is informative only: we write convolutions and inner products
            is_conv = arrays[0].ndim == 4
            if legacy:
                layer.type = _V1_CONVOLUTION if is_conv else _V1_INNER_PRODUCT
            else:
                layer.type = "Convolution" if is_conv else "InnerProduct"
        for array in arrays:
            _fill_blob(layer.blobs.add(), array, legacy)
    Path(path).write_bytes(net.SerializeToString())


# --- BVLC layer names <-> our state_dict keys.

# Figure 2(b)'s branches: BVLC's suffix -> our module inside `inceptionXX`.
_INCEPTION_BRANCHES = {
    "1x1": "branch1.conv",
    "3x3_reduce": "branch2.0.conv",
    "3x3": "branch2.1.conv",
    "5x5_reduce": "branch3.0.conv",
    "5x5": "branch3.1.conv",
    "pool_proj": "branch4.1.conv",
}
# Sec. 5's auxiliary heads: BVLC's lossN/<part> -> our module inside `auxN`.
_AUX_PARTS = {"conv": "conv.conv", "fc": "fc1", "classifier": "fc2"}
_FIRST_CONV = "conv1/7x7_s2"  # the layer that sees the BGR image


@functools.cache
def bvlc_layer_map() -> dict[str, str]:
    """BVLC layer name -> our module (its `.weight` and `.bias`), derived from the `paper` layer plan."""
    names: dict[str, str] = {}
    conv_rows = 0
    for planned in layer_plan(get_variant("paper")):
        row = planned.row
        if isinstance(row, ConvRow):  # conv1/7x7_s2; conv2/3x3_reduce and conv2/3x3
            conv_rows += 1
            convs = [layer.name for layer in planned.layers if isinstance(layer, ConvLayer)]
            base = f"conv{conv_rows}/{row.kernel}x{row.kernel}"
            if row.reduce:
                names[f"{base}_reduce"] = f"{convs[0]}.conv"
            names[base + (f"_s{row.stride}" if row.stride > 1 else "")] = f"{convs[-1]}.conv"
        elif isinstance(row, InceptionRow):
            key = row.name.removeprefix("inception (").removesuffix(")")
            for suffix, branch in _INCEPTION_BRANCHES.items():
                names[f"inception_{key}/{suffix}"] = f"{planned.layers[0].name}.{branch}"
        elif isinstance(row, LinearRow):  # BVLC numbers the main classifier after the aux ones
            names[f"loss{len(AUX.taps) + 1}/classifier"] = planned.layers[0].name
    for i, head in enumerate(aux_module_names(), start=1):
        for part, module in _AUX_PARTS.items():
            names[f"loss{i}/{part}"] = f"{head}.{module}"
    return names


@functools.cache
def _expected_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_network("paper", num_classes=num_classes, aux_logits=True)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _fit(array: np.ndarray, expected: tuple[int, ...], layer: str, key: str) -> np.ndarray:
    """`array` in `expected` shape; legacy 4-D blobs may carry leading ones (fc: 1x1xOUTxIN)."""
    if array.shape == expected:
        return array
    padded = (1,) * (array.ndim - len(expected)) + expected
    if array.ndim == 4 and array.shape == padded:
        return array.reshape(expected)
    raise ModelSourceError(f"BVLC layer {layer!r}: blob for {key} has shape {array.shape}, "
                           f"expected {expected}")


def _bgr_to_rgb(weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(weight[:, ::-1])  # swaps channels 0 and 2; its own inverse


def caffe_to_state_dict(blobs: Mapping[str, list[np.ndarray]], num_classes: int = 1000) -> dict[str, Tensor]:
    """BVLC's layer blobs as a state_dict for `build_network("paper", num_classes, aux_logits=True)`.

    conv1's input channels are flipped from BGR to RGB, so the weights take our RGB
    input preprocessed with the `caffe` preset (data.preprocessing).
    """
    expected = _expected_shapes(num_classes)
    layer_map = bvlc_layer_map()
    unknown = sorted(set(blobs) - set(layer_map))
    if unknown:  # weights we would silently drop: refuse rather than guess
        raise ModelSourceError(f"BVLC layers with blobs that the `paper` variant has no place for: {unknown}")
    state: dict[str, Tensor] = {}
    for layer, module in layer_map.items():
        if layer not in blobs:
            raise ModelSourceError(f"BVLC layer {layer!r} (for {module}) is missing; "
                                   f"found {len(blobs)} layers")
        keys = [f"{module}.weight", f"{module}.bias"]
        if len(blobs[layer]) != len(keys):
            raise ModelSourceError(f"BVLC layer {layer!r} has {len(blobs[layer])} blobs, "
                                   "expected 2 (weight, bias)")
        for key, array in zip(keys, blobs[layer]):
            array = _fit(np.asarray(array), expected[key], layer, key)
            if layer == _FIRST_CONV and key.endswith("weight"):
                array = _bgr_to_rgb(array)  # Caffe fed BGR images; our transforms give RGB
            state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return state


def state_dict_to_caffe(state_dict: Mapping[str, Tensor]) -> dict[str, list[np.ndarray]]:
    """The inverse of caffe_to_state_dict: a `paper` state_dict as BVLC layer blobs (conv1 back to BGR)."""
    blobs: dict[str, list[np.ndarray]] = {}
    for layer, module in bvlc_layer_map().items():
        arrays = []
        for key in (f"{module}.weight", f"{module}.bias"):
            if key not in state_dict:
                raise ModelSourceError(f"state_dict has no {key} (for BVLC layer {layer!r}); "
                                 "expected a `paper` model with aux_logits=True")
            arrays.append(state_dict[key].detach().cpu().numpy().copy())
        if layer == _FIRST_CONV:
            arrays[0] = _bgr_to_rgb(arrays[0])  # RGB -> BGR: the same swap
        blobs[layer] = arrays
    return blobs
