"""Instance masks kept at native resolution, pasted later: the same masks as mmdet's own path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deploybench.models.instance_masks import paste_masks


def test_native_masks_paste_to_the_same_masks(instance_segmentor, small_dataset: Path) -> None:
    adapter = instance_segmentor
    assert adapter.has_masks
    threshold = adapter.model.bbox_head.test_cfg.mask_thr_binary
    instances = 0
    for _, batch, samples in adapter.batches(adapter.dataset(small_dataset)):
        outputs = adapter.run_network(batch)
        full = adapter.postprocess(outputs, batch, [s.clone() for s in samples])[0]
        native = adapter.postprocess(outputs, batch, [s.clone() for s in samples],
                                     native_masks=True)[0]
        f, n = full.pred_instances, native.pred_instances
        assert "masks" not in n and n.mask_logits.shape[1:] == (20, 20)  # stride 8 of 160 px
        for key in ("bboxes", "scores", "labels"):
            torch.testing.assert_close(n[key], f[key], rtol=0, atol=0)
        pasted = paste_masks(n, native.metainfo, threshold)
        assert pasted.masks.shape == f.masks.shape == (len(f), 160, 160)
        np.testing.assert_array_equal(pasted.masks.numpy(), f.masks.numpy())
        instances += len(f)
    assert instances > 0
    # The parity arrays carry the masks, so the report can compare them across backends.
    assert adapter.prediction_arrays(full)["masks"].dtype == bool
