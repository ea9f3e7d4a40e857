"""The tensor preprocessing path against the model's reference pipeline, on the whole val split
of the embedded default: the same network input (max abs difference <= 1e-3; in fact the same
bytes) and identical post-processed predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deploybench.data.synthetic import SyntheticSpec, generate
from deploybench.errors import UserError
from deploybench.preprocess.resize import resize_linear_u8
from deploybench.preprocess.tensor_path import TensorPreprocessor, plan_steps


@pytest.fixture(scope="module")
def val_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default config's whole val split (150 images; it does not depend on num_train)."""
    return generate(tmp_path_factory.mktemp("val") / "shapes",
                    SyntheticSpec(seed=0, num_train=1, num_val=150))


@pytest.mark.parametrize("shape", [(160, 160, 192, 192), (375, 500, 480, 640),
                                   (100, 37, 200, 91), (640, 427, 320, 214), (7, 5, 300, 301)])
def test_resize_is_opencv_bilinear(shape: tuple[int, int, int, int]) -> None:
    import cv2

    h, w, out_h, out_w = shape
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    expected = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resize_linear_u8(torch.from_numpy(image), out_h, out_w).numpy(),
                                  expected)


@pytest.mark.parametrize("model", ["detector", "segmentor", "instance_segmentor"])
def test_paths_agree_on_the_val_split(model: str, val_split: Path,
                                      request: pytest.FixtureRequest) -> None:
    adapter = request.getfixturevalue(model)
    dataset = adapter.dataset(val_split)
    tensor_path = TensorPreprocessor(adapter, dataset, "cpu")
    worst = 0.0
    for i, (_, batch, samples) in enumerate(adapter.batches(dataset)):
        data = tensor_path(i)
        worst = max(worst, float((data["inputs"] - batch).abs().max()))
        ours = data["data_samples"][0]
        ref_meta = samples[0].metainfo
        assert set(ours.metainfo) == set(ref_meta)
        for key, value in ours.metainfo.items():
            same = (value == ref_meta[key] if isinstance(value, str | bool | None)
                    else np.allclose(value, ref_meta[key]))
            assert same, (key, value, ref_meta[key])
        outputs = [o.numpy() for o in adapter.run_network(batch)]
        a = adapter.prediction_arrays(adapter.postprocess(outputs, batch, samples)[0])
        b = adapter.prediction_arrays(adapter.postprocess(outputs, data["inputs"],
                                                          data["data_samples"])[0])
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"image {i} {key}")
    assert i == 149 and worst <= 1e-3


def test_unsupported_transform_is_named(detector) -> None:
    class RandomFlip:
        pass

    with pytest.raises(UserError, match="does not implement RandomFlip"):
        plan_steps([RandomFlip()])
