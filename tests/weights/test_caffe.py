"""BVLC Caffe weights: .caffemodel round trips, the BGR -> RGB flip, and preprocessing parity."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from googlenet import build_model
from googlenet.data.preprocessing import preset
from googlenet.data.transforms import Normalize
from googlenet.model.network import GoogLeNet
from googlenet.weights.caffe import (
    bvlc_layer_map,
    caffe_to_state_dict,
    read_caffemodel,
    state_dict_to_caffe,
    write_caffemodel,
)


def paper_model(seed: int = 0) -> GoogLeNet:
    torch.manual_seed(seed)
    return build_model("paper", num_classes=1000, aux_logits=True).eval()


@pytest.fixture(scope="module")
def original() -> GoogLeNet:
    return paper_model()


@pytest.fixture(scope="module")
def caffe_blobs(original: GoogLeNet) -> dict[str, list[np.ndarray]]:
    return state_dict_to_caffe(original.state_dict())


def test_layer_map_names_bvlc_layers() -> None:
    layer_map = bvlc_layer_map()
    assert layer_map["conv1/7x7_s2"] == "conv1.conv"
    assert layer_map["conv2/3x3_reduce"] == "conv2.conv"
    assert layer_map["conv2/3x3"] == "conv3.conv"
    assert layer_map["inception_4e/pool_proj"] == "inception4e.branch4.1.conv"
    assert layer_map["inception_5b/5x5"] == "inception5b.branch3.1.conv"
    assert layer_map["loss1/conv"] == "aux1.conv.conv"
    assert layer_map["loss2/fc"] == "aux2.fc1"
    assert layer_map["loss2/classifier"] == "aux2.fc2"
    assert layer_map["loss3/classifier"] == "fc"
    # 3 stem convs + 9 modules x 6 convs + 2 heads x 3 layers + the classifier
    assert len(layer_map) == 3 + 9 * 6 + 2 * 3 + 1


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "legacy-layers"])
def test_round_trip_layer_by_layer(tmp_path: Path, original: GoogLeNet,
                                   caffe_blobs: dict[str, list[np.ndarray]], legacy: bool) -> None:
    path = tmp_path / "googlenet.caffemodel"
    write_caffemodel(path, caffe_blobs, legacy=legacy)
    read = read_caffemodel(path)
    assert set(read) == set(bvlc_layer_map())
    if legacy:  # V1 blobs are 4-D: fc weights 1x1xOUTxIN, biases 1x1x1xN
        assert read["loss3/classifier"][0].shape == (1, 1, 1000, 1024)
        assert read["loss3/classifier"][1].shape == (1, 1, 1, 1000)
    else:
        assert read["loss3/classifier"][0].shape == (1000, 1024)
    converted = caffe_to_state_dict(read)
    expected = original.state_dict()
    assert set(converted) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(converted[key], tensor), key


def test_conv1_is_flipped_from_bgr_to_rgb(original: GoogLeNet,
                                         caffe_blobs: dict[str, list[np.ndarray]]) -> None:
    rgb = original.state_dict()["conv1.conv.weight"]
    bgr = caffe_blobs["conv1/7x7_s2"][0]
    assert np.array_equal(bgr, rgb.numpy()[:, [2, 1, 0]])  # written in Caffe's BGR order
    converted = caffe_to_state_dict(caffe_blobs)["conv1.conv.weight"]
    assert torch.equal(converted, torch.from_numpy(bgr[:, [2, 1, 0]]))  # read back as RGB
    # every other layer passes through unchanged
    assert np.array_equal(caffe_blobs["conv2/3x3"][0], original.state_dict()["conv3.conv.weight"].numpy())


def test_double_data_is_read(tmp_path: Path, caffe_blobs: dict[str, list[np.ndarray]]) -> None:
    blobs = {name: [a.astype(np.float64) for a in arrays] for name, arrays in caffe_blobs.items()}
    path = tmp_path / "double.caffemodel"
    write_caffemodel(path, {"loss3/classifier": blobs["loss3/classifier"]})
    read = read_caffemodel(path)
    assert read["loss3/classifier"][0].dtype == np.float64
    assert np.array_equal(read["loss3/classifier"][0], caffe_blobs["loss3/classifier"][0])


def caffe_preprocess(rgb: torch.Tensor) -> torch.Tensor:
    """What Caffe fed the network (train_val.prototxt): BGR, values in [0, 255], mean_value
    104, 117, 123 (B, G, R) subtracted, no division."""
    bgr = rgb[:, [2, 1, 0]] * 255
    return bgr - torch.tensor((104.0, 117.0, 123.0), dtype=rgb.dtype).view(1, 3, 1, 1)


CAFFE = Normalize(preset("caffe"))


def test_the_caffe_preset_is_bvlcs_preprocessing_in_rgb_order() -> None:
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(CAFFE(rgb), caffe_preprocess(rgb)[:, [2, 1, 0]], rtol=0, atol=1e-4)


def test_a_bgr_preprocessing_gives_caffes_exact_input() -> None:
    bgr_order = dataclasses.replace(preset("caffe"), mean=(104.0, 117.0, 123.0), channel_order="BGR")
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(Normalize(bgr_order)(rgb), caffe_preprocess(rgb), rtol=0, atol=1e-4)


def test_end_to_end_logits_match_caffe_preprocessing(tmp_path: Path) -> None:
    # The "Caffe" network: a paper model whose conv1 takes BGR input, as BVLC's does.
    caffe_net = paper_model(seed=1)
    caffe_state = caffe_net.state_dict()
    blobs = {layer: [caffe_state[f"{module}.weight"].numpy(), caffe_state[f"{module}.bias"].numpy()]
             for layer, module in bvlc_layer_map().items()}  # raw, unflipped: conv1 is BGR here
    path = tmp_path / "bvlc.caffemodel"
    write_caffemodel(path, blobs, legacy=True)
    ours = paper_model(seed=2)
    ours.load_state_dict(caffe_to_state_dict(read_caffemodel(path)))

    torch.manual_seed(3)
    rgb = torch.rand(1, 3, 128, 128)  # the channel handling does not depend on size; 128 keeps it fast
    with torch.no_grad():
        caffe_logits, caffe_aux = caffe_net.forward_train(caffe_preprocess(rgb))
        our_logits, our_aux = ours.forward_train(CAFFE(rgb))
    pairs = [(our_logits, caffe_logits), *zip(our_aux, caffe_aux, strict=True)]  # main, aux1, aux2
    assert len(pairs) == 3
    for ours_out, caffe_out in pairs:
        assert (ours_out - caffe_out).abs().max() <= 1e-4


def test_wrong_shape_names_the_layer(caffe_blobs: dict[str, list[np.ndarray]]) -> None:
    blobs = dict(caffe_blobs)
    weight, bias = blobs["inception_4c/3x3"]
    blobs["inception_4c/3x3"] = [weight[:, :, :1, :1], bias]
    with pytest.raises(ValueError, match=r"inception_4c/3x3.*\(256, 128, 1, 1\).*\(256, 128, 3, 3\)"):
        caffe_to_state_dict(blobs)


def test_missing_layer_names_the_layer(caffe_blobs: dict[str, list[np.ndarray]]) -> None:
    blobs = {name: arrays for name, arrays in caffe_blobs.items() if name != "loss2/fc"}
    with pytest.raises(ValueError, match="loss2/fc"):
        caffe_to_state_dict(blobs)


def test_unknown_layer_with_blobs_is_refused(caffe_blobs: dict[str, list[np.ndarray]]) -> None:
    blobs = {**caffe_blobs, "inception_6a/1x1": caffe_blobs["inception_5b/1x1"]}
    with pytest.raises(ValueError, match="inception_6a/1x1"):
        caffe_to_state_dict(blobs)


def test_layers_without_blobs_are_ignored(tmp_path: Path, caffe_blobs: dict[str, list[np.ndarray]]) -> None:
    path = tmp_path / "with_relu.caffemodel"
    write_caffemodel(path, {"conv1/relu_7x7": [], "loss3/classifier": caffe_blobs["loss3/classifier"]})
    assert list(read_caffemodel(path)) == ["loss3/classifier"]


def test_non_protobuf_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "not_a_model.caffemodel"
    path.write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(ValueError, match="not_a_model.caffemodel"):
        read_caffemodel(path)


def test_file_without_blobs_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deploy.prototxt"
    path.write_text('name: "GoogleNet"\nlayer { name: "data" type: "Input" }\n')
    with pytest.raises(ValueError, match="deploy.prototxt"):
        read_caffemodel(path)
