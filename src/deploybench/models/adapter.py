"""The model split every backend shares: pre-process | network (tensor mode) | post-process.

Only the network differs between backends, so accuracy differences come from the backend alone.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploybench.errors import UserError
from deploybench.models import instance_masks, roi_graphs
from deploybench.models.input_shape import set_input_shape
from deploybench.models.loading import (
    build_model,
    codebase_of,
    load_mm_config,
    register_codebase,
    set_data_root,
)

# A nested structure of tuples/lists of tensors, recorded as nested lengths (None = a leaf).
Spec = Any
# clock(stage, fn) runs fn and charges its time to stage (`measure.stages`); or just runs it.
Clock = Callable[[str, Callable[[], Any]], Any]


def untimed(stage: str, fn: Callable[[], Any]) -> Any:
    return fn()


def flatten(outputs: Any) -> tuple[list[torch.Tensor], Spec]:
    if isinstance(outputs, torch.Tensor):
        return [outputs], None
    if not isinstance(outputs, list | tuple):
        raise UserError(f"tensor-mode output of type {type(outputs).__name__} is not supported")
    leaves: list[torch.Tensor] = []
    spec = []
    for item in outputs:
        sub_leaves, sub_spec = flatten(item)
        leaves.extend(sub_leaves)
        spec.append((len(sub_leaves), sub_spec))
    return leaves, spec


def unflatten(leaves: Sequence[Any], spec: Spec) -> Any:
    if spec is None:
        return leaves[0]
    out, start = [], 0
    for count, sub_spec in spec:
        out.append(unflatten(leaves[start:start + count], sub_spec))
        start += count
    return out


class FeaturesAndProposalsNetwork(torch.nn.Module):
    """A two-stage detector's first graph: backbone + neck (`extract_feat`) and the RPN head's
    raw outputs. (`mode='tensor'` needs data samples for these models, and the whole graph does
    not export faithfully: the RPN's NMS and RoIAlign have no exact ONNX form in mmcv 2.1.)"""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def nested(self, inputs: torch.Tensor) -> list:
        """[FPN levels, RPN scores per level, RPN boxes per level]."""
        features = self.model.extract_feat(inputs)
        return [list(features), *self.model.rpn_head(features)]

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves, _ = flatten(self.nested(inputs))
        return tuple(leaves)


class TensorModeNetwork(torch.nn.Module):
    """backbone + neck + head as `model(x, mode='tensor')` runs them, outputs flattened."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def nested(self, inputs: torch.Tensor) -> Any:
        """The outputs as the head's post-processing takes them."""
        return self.model(inputs, mode="tensor")

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves, _ = flatten(self.nested(inputs))
        return tuple(leaves)


class EncodeDecodeNetwork(torch.nn.Module):
    """mmseg's `encode_decode` with static image metas (the network input's own shape): the
    logits at the input's size, every decode head included. For PointRend, whose tensor mode is
    broken upstream (`PointHead.forward` gets the wrong arguments): the point subdivision then
    runs in the graph, on every backend."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def nested(self, inputs: torch.Tensor) -> torch.Tensor:
        shape = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        metas = [{"img_shape": shape, "pad_shape": shape}] * int(inputs.shape[0])
        return self.model.encode_decode(inputs, metas)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.nested(inputs)


class ModelAdapter(ABC):
    """One OpenMMLab model: its own test pipeline, tensor-mode network and post-processing."""

    task: str
    codebase: str

    def __init__(self, cfg: Any, model: torch.nn.Module, device: str) -> None:
        self.cfg = cfg
        self.model = model
        self.device = device
        self.network = TensorModeNetwork(model).eval()
        self._spec: Spec = None

    # --- data -------------------------------------------------------------------------------
    def dataset(self, data_root: Path | str, split: str = "test") -> Any:
        """The config's test (or train) dataset from `data_root`, through the test pipeline.

        The train split serves calibration: its images prepared exactly as at test time.
        """
        import copy

        from mmengine.registry import DATASETS

        data_root = Path(data_root)
        if not data_root.is_dir():
            raise UserError(f"dataset directory {data_root} does not exist; run the pipeline's "
                            "data step (snakemake creates it from datasets.<name> in the config)")
        set_data_root(self.cfg, data_root)
        test = self.cfg.test_dataloader.dataset
        if split == "test":
            config = test
        else:
            train = self.cfg.train_dataloader.dataset
            while "dataset" in train:  # unwrap RepeatDataset, MultiImageMixDataset, ...
                train = train["dataset"]
            config = dict(copy.deepcopy(train), pipeline=test.pipeline, test_mode=True)
        with self._scope():
            return DATASETS.build(config)

    def _scope(self) -> Any:
        """Build in this model's codebase: mmdet and mmseg both register e.g. BaseSegDataset."""
        from mmengine.registry import DefaultScope

        return DefaultScope.overwrite_default_scope(self.codebase)

    def evaluator(self, dataset: Any) -> Any:
        from mmengine.evaluator import Evaluator

        with self._scope():
            evaluator = Evaluator(self.cfg.test_evaluator)
        evaluator.dataset_meta = dataset.metainfo
        return evaluator

    def batches(self, dataset: Any, batch_size: int = 1,
                limit: int | None = None) -> Iterator[tuple[dict, torch.Tensor, list]]:
        """(raw batch, network input, data samples) through the model's own data preprocessor."""
        from mmengine.dataset import pseudo_collate

        count = len(dataset) if limit is None else min(limit, len(dataset))
        for start in range(0, count, batch_size):
            raw = pseudo_collate([dataset[i] for i in range(start, min(start + batch_size, count))])
            data = self.preprocess(raw)
            yield raw, data["inputs"], data["data_samples"]

    def preprocess(self, raw: dict) -> dict:
        """The model's data preprocessor (normalize, pad, stack) on a collated batch."""
        with torch.inference_mode():
            return self.model.data_preprocessor(raw, False)

    # --- network ----------------------------------------------------------------------------
    def run_network(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        with torch.inference_mode():
            leaves, self._spec = flatten(self.network.nested(inputs.to(self.device)))
        return leaves

    def output_names(self, inputs: torch.Tensor) -> list[str]:
        """Stable names for the flattened outputs, e.g. `output_0_2` (group 0, level 2)."""
        self.run_network(inputs)

        def names(spec: Spec, prefix: str) -> list[str]:
            if spec is None:
                return [prefix]
            return [n for i, (_, sub) in enumerate(spec) for n in names(sub, f"{prefix}_{i}")]

        return names(self._spec, "output")

    def structure(self, inputs: torch.Tensor) -> Spec:
        if self._spec is None:
            self.run_network(inputs)
        return self._spec

    # --- the network graph and the glue around it ------------------------------------------
    def graph_input(self, inputs: torch.Tensor) -> torch.Tensor:
        """What the exported graph takes for this network input (the first crop where the
        model slides a window over the image; the input itself otherwise)."""
        return inputs

    def infer(self, run: Callable[[np.ndarray], Sequence[Any]], inputs: torch.Tensor) -> list:
        """The network outputs for `inputs`, the graph run by `run` (a backend's `infer`) and
        the glue between graphs on this adapter's device."""
        return list(run(np.ascontiguousarray(inputs.cpu().numpy())))

    slides = False  # the graph runs in a sliding window over the image
    graph = "backbone + neck + head"  # what the exported graph holds
    in_pytorch = ""  # the model's network part that runs in PyTorch on every backend

    def attach_head_graphs(self, first_graph: Path | None,
                           load: Callable[[Path], roi_graphs.HeadGraph]) -> None:
        """Graphs exported beside `first_graph` that the backend runs after it (`load` makes
        one runnable); only two-stage detectors have any."""
        return None

    def placement(self) -> dict[str, Any]:
        """What a cell's record says about where the parts after the first graph ran."""
        return {}

    def crops(self, inputs: torch.Tensor) -> int:
        """Graph calls per network input (slide inference: the windows); 1 otherwise."""
        return 1

    # --- post-processing --------------------------------------------------------------------
    # The timed parts of post-processing beyond `postprocess` itself (see `measure.stages`).
    postprocess_stages: tuple[str, ...] = ()

    def postprocess(self, outputs: Sequence[np.ndarray | torch.Tensor], inputs: torch.Tensor,
                    data_samples: list, native_masks: bool = False,
                    clock: Clock | None = None) -> list:
        """The model's own post-processing of the network outputs, whichever backend ran it.
        `native_masks`: leave instance masks at the mask head's resolution (`mask_logits`,
        `mask_probs`), unpasted; see `instance_masks`. `clock(stage, fn)` times the parts named
        in `postprocess_stages`."""
        tensors = [torch.as_tensor(np.asarray(o) if not isinstance(o, torch.Tensor) else o)
                   .to(self.device) for o in outputs]
        with torch.inference_mode():
            return self._postprocess(unflatten(tensors, self.structure(inputs)), data_samples,
                                     native_masks, clock or untimed)

    @property
    def has_masks(self) -> bool:
        """Whether the model predicts instance masks (so native masks are an option)."""
        return False

    @abstractmethod
    def _postprocess(self, outputs: Any, data_samples: list, native_masks: bool,
                     clock: Clock) -> list: ...

    @staticmethod
    @abstractmethod
    def metric_names(metrics: dict[str, float]) -> dict[str, float]:
        """The evaluator's metrics under the library's own short keys (bbox_mAP, mIoU, ...)."""

    @staticmethod
    def score_only_processed(evaluator: Any) -> None:
        """Score only the images that were run (`evaluate.limit`). mmseg's IoUMetric already
        sums over what it processed."""
        return None

    @staticmethod
    @abstractmethod
    def prediction_arrays(sample: Any) -> dict[str, np.ndarray]:
        """One post-processed prediction as plain arrays, for comparing backends."""


class DetectionAdapter(ModelAdapter):
    """mmdet single-stage detectors: `bbox_head.predict_by_feat` decodes boxes (and masks)."""

    task = "detection"
    codebase = "mmdet"

    def __init__(self, cfg: Any, model: torch.nn.Module, device: str) -> None:
        super().__init__(cfg, model, device)
        head = getattr(model, "bbox_head", None)
        if head is None or not hasattr(head, "predict_by_feat") or hasattr(model, "roi_head"):
            raise UserError(f"{type(model).__name__} is not a single-stage detector with "
                            "bbox_head.predict_by_feat; deploybench supports mmdet's single-stage "
                            "detectors (RTMDet, YOLOX, RetinaNet, FCOS, ...)")
        if not hasattr(head, "loss_cls"):
            # mmdet 3.3's SSDHead has no loss_cls, and its own predict fails on that
            # (`'SSDHead' object has no attribute 'loss_cls'`, upstream); predict_by_feat only
            # asks whether the loss has custom class channels, which SSD's has not.
            head.loss_cls = None

    @property
    def has_masks(self) -> bool:
        return instance_masks.has_masks(self.model.bbox_head)

    def _postprocess(self, outputs: Any, data_samples: list, native_masks: bool,
                     clock: Clock) -> list:
        metas = [sample.metainfo for sample in data_samples]
        head = self.model.bbox_head
        if native_masks and self.has_masks:
            results = instance_masks.predict_native(head, outputs, metas)
        else:
            results = head.predict_by_feat(*outputs, batch_img_metas=metas, rescale=True)
        return self.model.add_pred_to_datasample(data_samples, results)

    @staticmethod
    def metric_names(metrics: dict[str, float]) -> dict[str, float]:
        return {k.removeprefix("coco/"): v for k, v in metrics.items()}

    @staticmethod
    def score_only_processed(evaluator: Any) -> None:
        # CocoMetric scores every image of its annotation file unless told otherwise, so the
        # images not run would count as all missed.
        for metric in evaluator.metrics:
            if hasattr(metric, "img_ids"):
                metric.img_ids = list(dict.fromkeys(pred["img_id"] for _, pred in metric.results))

    @staticmethod
    def prediction_arrays(sample: Any) -> dict[str, np.ndarray]:
        pred = sample.pred_instances
        arrays = {"bboxes": pred.bboxes.cpu().numpy(), "scores": pred.scores.cpu().numpy(),
                  "labels": pred.labels.cpu().numpy()}
        if "masks" in pred:
            arrays["masks"] = pred.masks.cpu().numpy().astype(bool)
        return arrays


class TwoStageDetectionAdapter(DetectionAdapter):
    """mmdet two-stage detectors (Faster / Mask / Cascade R-CNN): the first graph is backbone +
    neck + RPN head; the proposals (decode + NMS), RoIAlign and the RoI NMS run after it in
    PyTorch, on the cell's device, with the model's own code, whatever backend ran the graph.
    The RoI heads (bbox, mask) are graphs of their own (`roi_graphs`) where the backend runs
    ONNX and the export made them; in PyTorch otherwise. The docs say which, per cell. Their
    stages are the study's: proposals, RoI bbox (RoIAlign + bbox head + NMS), RoI mask
    (RoIAlign + mask head) and mask post (the paste into full-image masks)."""

    graph = "backbone + neck + RPN head"

    @property
    def in_pytorch(self) -> str:  # type: ignore[override]
        if roi_graphs.heads(self.model):
            return "proposals (decode + NMS), RoIAlign and the RoI NMS"
        return "proposals (decode + NMS) and the RoI heads (RoIAlign, heads, NMS; a cascade's too)"

    def __init__(self, cfg: Any, model: torch.nn.Module, device: str) -> None:
        ModelAdapter.__init__(self, cfg, model, device)
        if getattr(model, "rpn_head", None) is None or getattr(model, "roi_head", None) is None:
            raise UserError(f"{type(model).__name__} has no rpn_head and roi_head; deploybench "
                            "runs two-stage detectors of that shape (Faster / Mask / Cascade "
                            "R-CNN)")
        self.network = FeaturesAndProposalsNetwork(model).eval()
        self.head_graphs: dict[str, roi_graphs.HeadGraph] = {}  # run by the cell's backend
        with_mask = model.roi_head.with_mask
        self.postprocess_stages = ("proposals", "roi_bbox") + (
            ("roi_mask", "mask_post") if with_mask else ())

    def attach_head_graphs(self, first_graph: Path | None,
                           load: Callable[[Path], roi_graphs.HeadGraph]) -> None:
        self.head_graphs = {name: load(path)
                            for name, path in roi_graphs.present(self.model, first_graph).items()}

    def placement(self) -> dict[str, Any]:
        return {"roi_heads": sorted(roi_graphs.heads(self.model)),
                "roi_heads_on_backend": sorted(self.head_graphs)}

    @property
    def _mask_head(self) -> Any:
        """The mask head whose `predict_by_feat` pastes (a cascade's last stage)."""
        head = self.model.roi_head.mask_head
        return head[-1] if isinstance(head, torch.nn.ModuleList) else head

    @property
    def has_masks(self) -> bool:
        return self.model.roi_head.with_mask and hasattr(self._mask_head, "_predict_by_feat_single")

    def _postprocess(self, outputs: Any, data_samples: list, native_masks: bool,
                     clock: Clock) -> list:
        with roi_graphs.run_heads_with(self.model, self.head_graphs, self.device):
            return self._two_stages(outputs, data_samples, native_masks, clock)

    def _two_stages(self, outputs: Any, data_samples: list, native_masks: bool,
                    clock: Clock) -> list:
        features, cls_scores, bbox_preds = outputs
        metas = [sample.metainfo for sample in data_samples]
        roi, features = self.model.roi_head, tuple(features)
        # roi_head.predict, step by step: with a mask branch the boxes stay at input scale
        # until the mask head rescales boxes and masks together.
        proposals = clock("proposals", lambda: self.model.rpn_head.predict_by_feat(
            cls_scores, bbox_preds, batch_img_metas=metas, rescale=False))
        results = clock("roi_bbox", lambda: roi.predict_bbox(
            features, metas, proposals, rcnn_test_cfg=roi.test_cfg, rescale=not roi.with_mask))
        if roi.with_mask:
            head = self._mask_head
            paste = head.predict_by_feat
            post = (functools.partial(instance_masks.predict_roi_native, head)
                    if native_masks and self.has_masks else paste)
            # This head object only, removed again below: the paste charged to mask_post.
            head.predict_by_feat = lambda *a, **k: clock("mask_post", lambda: post(*a, **k))
            try:
                results = clock("roi_mask", lambda: roi.predict_mask(features, metas, results,
                                                                     rescale=True))
            finally:
                del head.predict_by_feat
        return self.model.add_pred_to_datasample(data_samples, results)


class SegmentationAdapter(ModelAdapter):
    """mmseg encoder-decoders: decode head resize, then postprocess_result. In slide mode
    (`test_cfg.mode='slide'`) the graph is one crop and mmseg's sliding window runs around the
    backend: the windows, each crop's logits resized to the crop, summed and averaged where
    windows overlap (`EncoderDecoder.slide_inference`'s arithmetic)."""

    task = "segmentation"
    codebase = "mmseg"

    def __init__(self, cfg: Any, model: torch.nn.Module, device: str) -> None:
        super().__init__(cfg, model, device)
        test_cfg = model.test_cfg or {}
        mode = test_cfg.get("mode", "whole")  # only the mode decides: stray crop keys stay
        if mode not in ("whole", "slide"):
            raise UserError(f"test_cfg.mode={mode!r}: deploybench runs mmseg's 'whole' and "
                            "'slide' modes")
        self.slide: tuple[tuple[int, int], tuple[int, int]] | None = (
            (tuple(test_cfg["crop_size"]), tuple(test_cfg["stride"])) if mode == "slide"
            else None)
        heads = model.decode_head
        self.encode_decode = (isinstance(heads, torch.nn.ModuleList)
                              and hasattr(heads[-1], "get_points_test"))
        if self.encode_decode:
            if self.slide is not None:
                raise UserError("PointRend-style models run in mmseg's 'whole' mode only here; "
                                "set model.test_cfg.mode='whole'")
            self.network = EncodeDecodeNetwork(model).eval()
            self.graph = "backbone + decode heads + point subdivision (encode_decode)"

    def windows(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """(y1, y2, x1, x2) of every window over an image, in mmseg's order."""
        (h_crop, w_crop), (h_stride, w_stride) = self.slide
        h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
        boxes = []
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y2 = min(h_idx * h_stride + h_crop, height)
                x2 = min(w_idx * w_stride + w_crop, width)
                boxes.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
        return boxes

    @property
    def slides(self) -> bool:  # type: ignore[override]
        return self.slide is not None

    def crops(self, inputs: torch.Tensor) -> int:
        return len(self.windows(*inputs.shape[-2:])) if self.slide is not None else 1

    def graph_input(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.slide is None:
            return inputs
        y1, y2, x1, x2 = self.windows(*inputs.shape[-2:])[0]
        return inputs[..., y1:y2, x1:x2]

    def infer(self, run: Callable[[np.ndarray], Sequence[Any]], inputs: torch.Tensor) -> list:
        if self.slide is None:
            return super().infer(run, inputs)
        from mmseg.models.utils import resize

        height, width = inputs.shape[-2:]
        head = self.model.decode_head
        logits = counts = None
        for y1, y2, x1, x2 in self.windows(height, width):
            crop = np.ascontiguousarray(inputs[..., y1:y2, x1:x2].cpu().numpy())
            (out,) = run(crop)
            crop_logits = resize(torch.as_tensor(np.asarray(out)).to(self.device),
                                 size=(y2 - y1, x2 - x1), mode="bilinear",
                                 align_corners=head.align_corners)
            if logits is None:
                logits = crop_logits.new_zeros((*crop_logits.shape[:2], height, width))
                counts = crop_logits.new_zeros((crop_logits.shape[0], 1, height, width))
            logits[..., y1:y2, x1:x2] += crop_logits
            counts[..., y1:y2, x1:x2] += 1
        return [logits / counts]

    def structure(self, inputs: torch.Tensor) -> Spec:
        return None if self.slide is not None else super().structure(inputs)

    def output_names(self, inputs: torch.Tensor) -> list[str]:
        return super().output_names(self.graph_input(inputs))

    def _postprocess(self, outputs: Any, data_samples: list, native_masks: bool,
                     clock: Clock) -> list:
        if self.slide is not None or self.encode_decode:  # already the input's logits
            return self.model.postprocess_result(outputs, data_samples)
        metas = [sample.metainfo for sample in data_samples]
        logits = self.model.decode_head.predict_by_feat(outputs, metas)
        return self.model.postprocess_result(logits, data_samples)

    @staticmethod
    def metric_names(metrics: dict[str, float]) -> dict[str, float]:
        return dict(metrics)

    @staticmethod
    def prediction_arrays(sample: Any) -> dict[str, np.ndarray]:
        return {"labels": sample.pred_sem_seg.data[0].cpu().numpy().astype(np.int32)}


ADAPTERS: dict[str, type[ModelAdapter]] = {"mmdet": DetectionAdapter, "mmseg": SegmentationAdapter}


def load_adapter(config: Path | str, checkpoint: Path | str, device: str = "cpu",
                 input_shape: tuple[int, int] | None = None,
                 sha256: str | None = None) -> ModelAdapter:
    """The model of `config` with `checkpoint`'s weights; `input_shape` ([h, w]): set its test
    pipeline to that shape (see `input_shape.set_input_shape`), else leave it as written."""
    cfg = load_mm_config(config)
    if input_shape is not None:
        set_input_shape(cfg, input_shape)
    codebase = codebase_of(cfg)
    register_codebase(codebase)
    model = build_model(cfg, checkpoint, device, sha256)
    if codebase == "mmdet" and getattr(model, "roi_head", None) is not None:
        return TwoStageDetectionAdapter(cfg, model, device)
    return ADAPTERS[codebase](cfg, model, device)
