"""Instance masks at their native resolution, pasted only when needed.

RTMDet-Ins (and heads like it) predict each instance's mask at the mask head's resolution
(stride 8 for RTMDet-Ins) and then, inside `predict_by_feat`, upsample it to the input, rescale
it to the original image and threshold it: a full-image mask per instance, mostly background. That
paste dominates post-processing for large images with many instances. `predict_native` runs
the head's own post-processing but stops before the paste, leaving `mask_logits` (N, h, w);
`paste_masks` does the rest, exactly as mmdet does, for a consumer that needs full masks (the
COCO metric). The two together give the same masks as `predict_by_feat` (tested).

Mask R-CNN's FCN mask head is the same story at 28x28 per box: `predict_roi_native` keeps each
box's mask probabilities (`mask_probs`) and `paste_masks` pastes them into the image as mmdet does.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812


def has_masks(head: Any) -> bool:
    return hasattr(head, "_mask_predict_by_feat_single")


def _post_process_native(head: Any, results: Any, mask_feat: torch.Tensor, cfg: Any,
                         rescale: bool = False, with_nms: bool = True,
                         img_meta: dict | None = None) -> Any:
    """mmdet's RTMDetInsHead._bbox_mask_post_process up to (not including) the mask paste."""
    from mmcv.ops import batched_nms
    from mmdet.structures.bbox import get_box_tensor, get_box_wh, scale_boxes

    if rescale:
        results.bboxes = scale_boxes(results.bboxes, [1 / s for s in img_meta["scale_factor"]])
    if hasattr(results, "score_factors"):
        results.scores = results.scores * results.pop("score_factors")
    if cfg.get("min_bbox_size", -1) >= 0:
        w, h = get_box_wh(results.bboxes)
        valid = (w > cfg.min_bbox_size) & (h > cfg.min_bbox_size)
        if not valid.all():
            results = results[valid]
    stride = head.prior_generator.strides[0][0]
    if results.bboxes.numel() > 0:
        det_bboxes, keep = batched_nms(get_box_tensor(results.bboxes), results.scores,
                                       results.labels, cfg.nms)
        results = results[keep]
        results.scores = det_bboxes[:, -1]
        results = results[:cfg.max_per_img]
        results.mask_logits = head._mask_predict_by_feat_single(mask_feat, results.kernels,
                                                                results.priors)
    else:
        h, w = mask_feat.shape[-2:]
        results.mask_logits = mask_feat.new_zeros((0, h, w))
    results.mask_stride = torch.full((len(results),), stride)
    return results


def predict_native(head: Any, outputs: Any, metas: list[dict]) -> list[Any]:
    """`head.predict_by_feat(..., rescale=True)` with masks left at native resolution."""
    head._bbox_mask_post_process = (  # this head object only, removed again below
        lambda *args, **kwargs: _post_process_native(head, *args, **kwargs))
    try:
        return head.predict_by_feat(*outputs, batch_img_metas=metas, rescale=True)
    finally:
        del head._bbox_mask_post_process


def predict_roi_native(head: Any, mask_preds: tuple, results_list: list, batch_img_metas: list,
                       rcnn_test_cfg: Any, rescale: bool = False,
                       activate_map: bool = False) -> list:
    """`FCNMaskHead.predict_by_feat` up to (not including) the paste: each box's mask of its
    label, as probabilities at the head's resolution; boxes rescaled as mmdet rescales them."""
    for preds, results, meta in zip(mask_preds, results_list, batch_img_metas, strict=True):
        bboxes = results.bboxes
        probs = bboxes.new_tensor(preds) if activate_map else preds.sigmoid()
        probs = probs[:, 0] if head.class_agnostic else probs[range(len(probs)), results.labels]
        if rescale:
            results.bboxes = bboxes / bboxes.new_tensor(meta["scale_factor"]).repeat((1, 2))
        results.mask_probs = probs
    return results_list


def _paste_roi_masks(results: Any, img_meta: dict, threshold: float) -> Any:
    """FCNMaskHead._predict_by_feat_single's paste, chunked as mmdet chunks it per device."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    probs, bboxes = results.mask_probs, results.bboxes
    ori_h, ori_w = img_meta["ori_shape"][:2]
    masks = torch.zeros((len(probs), ori_h, ori_w), dtype=torch.bool, device=probs.device)
    on_cpu = probs.device.type == "cpu"
    for inds in torch.chunk(torch.arange(len(probs), device=probs.device),
                            max(len(probs), 1) if on_cpu else 1):
        chunk, spatial = _do_paste_mask(probs[inds][:, None], bboxes[inds], ori_h, ori_w,
                                        skip_empty=on_cpu)
        masks[(inds, *spatial)] = chunk >= threshold
    results.masks = masks
    return results


def paste_masks(results: Any, img_meta: dict, threshold: float) -> Any:
    """Full-image boolean masks from native ones, as mmdet computes them."""
    if "mask_probs" in results:
        return _paste_roi_masks(results, img_meta, threshold)
    logits = results.mask_logits
    ori_h, ori_w = img_meta["ori_shape"][:2]
    if logits.shape[0] == 0:
        results.masks = torch.zeros((0, ori_h, ori_w), dtype=torch.bool, device=logits.device)
        return results
    stride = int(results.mask_stride[0])
    logits = F.interpolate(logits.unsqueeze(0), scale_factor=stride, mode="bilinear")
    scale = [1 / s for s in img_meta["scale_factor"]]
    logits = F.interpolate(logits, size=[math.ceil(logits.shape[-2] * scale[0]),
                                         math.ceil(logits.shape[-1] * scale[1])],
                           mode="bilinear", align_corners=False)[..., :ori_h, :ori_w]
    results.masks = logits.sigmoid().squeeze(0) > threshold
    return results
