"""Real mmdet/mmseg models: export, ONNX Runtime parity, shared post-processing, bad checkpoints."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deploybench.backends import get_backend
from deploybench.cell import CellInputs
from deploybench.errors import UserError
from deploybench.evaluate import evaluate_cell
from deploybench.export.onnx_export import export_onnx
from deploybench.measure.group import GroupSettings, Member, measure_group
from deploybench.models.adapter import load_adapter
from deploybench.results import Cell

from .conftest import checkpoint_path, model_entry

QUICK = GroupSettings.of(warmup_iters=1, warmup_seconds=0.0, min_rounds=2, min_seconds=0.0,
                         max_seconds=1.0, slice_seconds=0.01, threads=2, processes=1)


def measure_cell(cell: Cell, inputs: CellInputs, settings: GroupSettings,
                 export_shape: list[int] | None, stage_images: int = 20) -> tuple:
    """One cell as a measure group of its own."""
    from dataclasses import replace

    return measure_group([Member(cell, inputs.artifact)], inputs, export_shape, None,
                         replace(settings, stage_images=stage_images), "forkserver")[0]


@pytest.fixture(params=["rtmdet_tiny_shapes", "fast_scnn_shapes", "rtmdet_ins_tiny_shapes"])
def model(request: pytest.FixtureRequest):
    fixture = {"rtmdet_tiny_shapes": "detector", "fast_scnn_shapes": "segmentor",
               "rtmdet_ins_tiny_shapes": "instance_segmentor"}[request.param]
    return request.param, request.getfixturevalue(fixture)


def test_onnx_runtime_matches_pytorch(model, small_dataset: Path, tmp_path: Path) -> None:
    name, adapter = model
    dataset = adapter.dataset(small_dataset)
    _, sample, samples = next(adapter.batches(dataset))
    meta = export_onnx(adapter, sample, tmp_path / "m.onnx", opset=17)
    assert meta["opset"] == 17
    assert meta["input_shape"] == [1, 3, *model_entry(name)["input_shape"]]
    x = np.ascontiguousarray(sample.numpy())
    reference = get_backend("pytorch").load(adapter, None, "fp32", "cpu", 2).infer(x)
    ort = get_backend("onnxruntime").load(adapter, tmp_path / "m.onnx", "fp32", "cpu", 2).infer(x)
    ov = get_backend("openvino").load(adapter, tmp_path / "m.onnx", "fp32", "cpu", 2).infer(x)
    assert len(ort) == len(ov) == len(reference) == len(meta["output_names"])
    for a, c, b in zip(ort, ov, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(c, b, rtol=1e-3, atol=1e-4)
    # The model's own post-processing gives the same predictions from either backend's outputs.
    from_ort = adapter.postprocess(ort, sample, [s.clone() for s in samples])[0]
    from_pt = adapter.postprocess(reference, sample, [s.clone() for s in samples])[0]
    if name.startswith("rtmdet"):
        a, b = from_ort.pred_instances, from_pt.pred_instances
        top = b.scores > 0.3
        assert top.sum() > 0
        torch.testing.assert_close(a.bboxes[top], b.bboxes[top], atol=1e-2, rtol=1e-4)
        if "masks" in b:  # instance masks from either backend's outputs
            agree = (a.masks[top] == b.masks[top]).float().mean()
            assert agree > 0.999
    else:
        agree = (from_ort.pred_sem_seg.data == from_pt.pred_sem_seg.data).float().mean()
        assert agree > 0.999


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_evaluate_and_measure_cells(backend: str, small_dataset: Path, tmp_path: Path,
                                    detector) -> None:
    entry = model_entry("rtmdet_tiny_shapes")
    artifact = None
    if backend == "onnxruntime":
        _, sample, _ = next(detector.batches(detector.dataset(small_dataset)))
        export_onnx(detector, sample, tmp_path / "d.onnx", 17)
        artifact = tmp_path / "d.onnx"
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset, artifact, threads=2)
    cell = Cell("rtmdet_tiny_shapes", "detection", backend, "fp32")
    status, reason, data = evaluate_cell(cell, inputs, [1, 3, 160, 160], limit=4)
    assert (status, reason, data["num_images"]) == ("ok", "", 4)
    assert 0.3 < data["metrics"]["bbox_mAP"] <= 1.0
    status, _, data = measure_cell(cell, inputs, QUICK, [1, 3, 160, 160])
    assert status == "ok" and len(data["samples_ms"]) == data["latency_ms"]["count"] >= 6
    # Alone in its group: PyTorch fp32 is its own reference; another cell has no speed-up.
    assert data["group"]["rounds"] >= 2
    assert (data["speedup"] or {}).get("is_reference") is (True if backend == "pytorch"
                                                            else None)
    assert data["first_call_seconds"] > 0
    assert data["latency_ms"]["min"] <= data["latency_ms"]["median"] <= data["latency_ms"]["max"]
    # End-to-end timing ran ONNX Runtime without intra-op spinning, and says so.
    expected = {"session.intra_op.allow_spinning": "0"} if backend == "onnxruntime" else None
    assert data["stages"].get("runner_settings") == expected


def test_torchscript_matches_pytorch(detector, small_dataset: Path) -> None:
    _, sample, _ = next(detector.batches(detector.dataset(small_dataset)))
    x = np.ascontiguousarray(sample.numpy())
    reference = get_backend("pytorch").load(detector, None, "fp32", "cpu", 2).infer(x)
    runner = get_backend("torchscript").load(detector, None, "fp32", "cpu", 2)
    for _ in range(2):  # the first call traces, the second runs the frozen graph
        for a, b in zip(runner.infer(x), reference, strict=True):
            # Freezing folds batch norms into convolutions: equal up to float rounding.
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_int8_quantization_calibrates_on_train_images(segmentor, small_dataset: Path,
                                                      tmp_path: Path) -> None:
    import onnx

    from deploybench.export.quantize import calibration_batches, quantize_int8

    test_set = segmentor.dataset(small_dataset)
    _, sample, _ = next(segmentor.batches(test_set))
    export_onnx(segmentor, sample, tmp_path / "fp32.onnx", 17)
    batches = calibration_batches(segmentor, small_dataset, count=8)
    assert len(batches) == 2  # the train split of the small dataset
    assert batches[0].shape == tuple(sample.shape)
    info = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", batches, "MinMax")
    assert info["calibration"] == {"method": "MinMax", "images": 2}  # the build adds the split
    # Where no train split is at hand, the first test images calibrate (`calibration_split`).
    first_test = [b.numpy() for _, b, _ in segmentor.batches(test_set, 1, limit=3)]
    from_test = calibration_batches(segmentor, small_dataset, count=3, split="test")
    assert len(from_test) == 3
    assert all(np.array_equal(a, b) for a, b in zip(from_test, first_test, strict=True))
    assert not any(np.array_equal(a, batches[0]) for a in from_test)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = np.ascontiguousarray(sample.numpy())
    fp32 = get_backend("onnxruntime").load(segmentor, tmp_path / "fp32.onnx", "fp32", "cpu", 2)
    int8 = get_backend("onnxruntime").load(segmentor, tmp_path / "int8.onnx", "int8", "cpu", 2)
    a, b = fp32.infer(x)[0], int8.infer(x)[0]
    assert not np.array_equal(a, b)  # really quantized
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.95  # and still segments the same


def test_segmentor_evaluates_miou(small_dataset: Path) -> None:
    entry = model_entry("fast_scnn_shapes")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("fast_scnn_shapes"),
                        small_dataset, threads=2)
    cell = Cell("fast_scnn_shapes", "segmentation", "pytorch", "fp32")
    status, _, data = evaluate_cell(cell, inputs, [1, 3, 192, 192], limit=3)
    assert status == "ok" and 50 < data["metrics"]["mIoU"] <= 100


def test_unavailable_precision_is_skipped_with_reason(small_dataset: Path) -> None:
    entry = model_entry("fast_scnn_shapes")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("fast_scnn_shapes"), small_dataset)
    cell = Cell("fast_scnn_shapes", "segmentation", "onnxruntime", "fp16")
    status, reason, _ = measure_cell(cell, inputs, QUICK, None)
    assert status == "skipped" and "not fp16 on cpu" in reason


def test_input_shape_mismatch_is_explained(small_dataset: Path) -> None:
    entry = model_entry("rtmdet_tiny_shapes")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset)
    cell = Cell("rtmdet_tiny_shapes", "detection", "pytorch", "fp32")
    status, reason, _ = measure_cell(cell, inputs, QUICK, [1, 3, 128, 128])
    assert status == "failed"
    assert re.search(r"produced input shape \[1, 3, 160, 160\] but the network was exported "
                     r"for \[1, 3, 128, 128\]", reason)


def test_missing_checkpoint_and_dataset_say_how_to_get_them(tmp_path: Path,
                                                            small_dataset: Path) -> None:
    entry = model_entry("fast_scnn_shapes")
    with pytest.raises(UserError, match="does not exist; run the pipeline's fetch step"):
        load_adapter(entry["config"], tmp_path / "missing.pth")
    adapter = load_adapter(entry["config"], checkpoint_path("fast_scnn_shapes"))
    with pytest.raises(UserError, match="run the pipeline's data step"):
        adapter.dataset(tmp_path / "no-data")


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    entry = model_entry("rtmdet_tiny_shapes")
    with pytest.raises(UserError, match="does not match config's model"):
        load_adapter(entry["config"], checkpoint_path("fast_scnn_shapes"))


def test_skip_reasons_name_what_is_missing() -> None:
    backend = get_backend("openvino")
    backend.spec = replace(backend.spec, requires="deploybench_no_such_package")
    assert backend.available("fp32", "cpu") == (
        False, "deploybench_no_such_package is not installed "
        "(pip install deploybench_no_such_package)")
    ok, reason = get_backend("openvino").available("fp32", "cuda")
    assert not ok and reason == "openvino supports cpu: fp32, int8; not fp32 on cuda"
    with pytest.raises(UserError, match="unknown backend 'tensorrt9'; valid: pytorch"):
        get_backend("tensorrt9")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reason given without a GPU")
def test_gpu_cells_say_there_is_no_gpu() -> None:
    for backend in ("pytorch", "torchscript", "torch_compile", "onnxruntime"):
        ok, reason = get_backend(backend).available("fp32", "cuda")
        assert not ok and "no CUDA device" in reason, (backend, reason)
    ok, reason = get_backend("tensorrt").available("fp16", "cuda")
    assert not ok and reason  # tensorrt not installed, or no CUDA device


def test_torch_compile_matches_pytorch(small_dataset: Path) -> None:
    # A fresh adapter: compiling must not change the session's shared models.
    entry = model_entry("fast_scnn_shapes")
    segmentor = load_adapter(entry["config"], checkpoint_path("fast_scnn_shapes"))
    _, sample, _ = next(segmentor.batches(segmentor.dataset(small_dataset)))
    x = np.ascontiguousarray(sample.numpy())
    reference = get_backend("pytorch").load(segmentor, None, "fp32", "cpu", 2).infer(x)
    folders = []
    # A second runner in the same process gets a new folder, and runs although the first one's
    # kernels (which inductor keeps loaded and reuses) were removed.
    for _ in range(2):
        runner = get_backend("torch_compile").load(segmentor, None, "fp32", "cpu", 2)
        for _ in range(2):  # the first call compiles (inductor, C++ on the CPU)
            for a, b in zip(runner.infer(x), reference, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
        folders.append(Path(runner.cache_dir))
        if len(folders) == 1:
            assert any(folders[0].rglob("*.so")), "inductor wrote no kernel to the runner's folder"
        runner.close()
        assert not folders[-1].exists()  # inductor's output is not left behind
    assert folders[0] != folders[1] and "TORCHINDUCTOR_CACHE_DIR" not in os.environ


def test_openvino_int8_by_nncf(segmentor, small_dataset: Path, tmp_path: Path) -> None:
    from deploybench.export.build import BuildOptions, build_artifact

    _, sample, _ = next(segmentor.batches(segmentor.dataset(small_dataset)))
    export_onnx(segmentor, sample, tmp_path / "fp32.onnx", 17)
    info = build_artifact(segmentor, small_dataset, "openvino", "cpu", "int8",
                          tmp_path / "fp32.onnx", tmp_path / "int8.xml",
                          BuildOptions.of({"calibration_images": 8}))
    assert info["calibration"] == {"method": "MinMax (NNCF default statistics)", "images": 2,
                                   "split": "train"}
    assert info["quantizer"] == "nncf.quantize"
    assert (tmp_path / "int8.bin").stat().st_size > 0
    assert "FakeQuantize" in (tmp_path / "int8.xml").read_text()  # really quantized
    x = np.ascontiguousarray(sample.numpy())
    fp32 = get_backend("openvino").load(segmentor, tmp_path / "fp32.onnx", "fp32", "cpu", 2)
    int8 = get_backend("openvino").load(segmentor, tmp_path / "int8.xml", "int8", "cpu", 2)
    a, b = fp32.infer(x)[0], int8.infer(x)[0]
    assert not np.array_equal(a, b)
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.95


def test_fp16_model_for_gpu_cells(segmentor, small_dataset: Path, tmp_path: Path) -> None:
    """Built on any machine (the conversion needs no GPU); run by the CUDA cells."""
    import onnx

    from deploybench.export.quantize import convert_fp16

    _, sample, _ = next(segmentor.batches(segmentor.dataset(small_dataset)))
    export_onnx(segmentor, sample, tmp_path / "fp32.onnx", 17)
    info = convert_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")
    assert info["io"] == "fp32"
    graph = onnx.load(str(tmp_path / "fp16.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {i.data_type for i in graph.initializer} >= {onnx.TensorProto.FLOAT16}


def test_build_that_this_machine_cannot_do_is_skipped(tmp_path: Path, small_dataset: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from deploybench.atomic import read_json
    from deploybench.cli import main

    if get_backend("tensorrt").available("fp16", "cuda")[0]:
        pytest.skip("this machine can build TensorRT engines")
    entry = model_entry("fast_scnn_shapes")
    out = tmp_path / "tensorrt-fp16.json"
    code = main(["build", "--model", "m", "--task", "segmentation", "--config", entry["config"],
                 "--checkpoint", str(checkpoint_path("fast_scnn_shapes")), "--data",
                 str(small_dataset), "--input-shape", "192", "192", "--backend", "tensorrt",
                 "--device", "cuda", "--precision", "fp16", "--onnx", str(tmp_path / "x.onnx"),
                 "--artifact", str(tmp_path / "tensorrt-fp16.engine"), "--out", str(out)])
    result = read_json(out)
    assert code == 0 and result["status"] == "skipped" and result["reason"]
    assert (tmp_path / "tensorrt-fp16.engine").stat().st_size == 0  # placeholder for the DAG


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torchscript"])
def test_larger_batch_reports_throughput(backend: str, detector, small_dataset: Path,
                                         tmp_path: Path) -> None:
    entry = model_entry("rtmdet_tiny_shapes")
    _, sample, _ = next(detector.batches(detector.dataset(small_dataset)))
    meta = export_onnx(detector, sample, tmp_path / "d.onnx", 17, dynamic_batch=4)
    assert meta["dynamic_batch"] == 4
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset, tmp_path / "d.onnx" if backend != "torchscript" else None,
                        threads=2)
    cell = Cell("rtmdet_tiny_shapes", "detection", backend, "fp32", batch=4)
    status, reason, data = measure_cell(cell, inputs, QUICK, [4, 3, 160, 160], stage_images=0)
    assert (status, reason, data["input_shape"]) == ("ok", "", [4, 3, 160, 160])
    assert data["fps"] == pytest.approx(4 * 1000 / data["latency_ms"]["median"])
    assert data["stages"] is None  # the stage breakdown is per image, at batch 1


def test_batch_larger_than_the_split_is_explained(small_dataset: Path) -> None:
    entry = model_entry("fast_scnn_shapes")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("fast_scnn_shapes"), small_dataset)
    cell = Cell("fast_scnn_shapes", "segmentation", "pytorch", "fp32", batch=64)
    status, reason, _ = measure_cell(cell, inputs, QUICK, [64, 3, 192, 192])
    assert status == "failed"
    assert "batch 64 needs at least 64 test images; the dataset has 6" in reason


def test_a_subset_is_scored_on_itself(small_dataset: Path, tmp_path: Path) -> None:
    """`evaluate.limit`: the first N images scored on their own ground truth, exactly as
    pycocotools (through mmdet's CocoMetric) scores a split that holds only those N images."""
    import json
    import shutil

    entry = model_entry("rtmdet_tiny_shapes")
    cell = Cell("rtmdet_tiny_shapes", "detection", "pytorch", "fp32")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset, threads=2)
    _, _, limited = evaluate_cell(cell, inputs, [1, 3, 160, 160], limit=3)
    assert (limited["num_images"], limited["split_images"]) == (3, 6)
    # The same three images as a split of their own.
    subset = tmp_path / "shapes"
    shutil.copytree(small_dataset, subset)
    annotations = json.loads((subset / "annotations" / "val.json").read_text())
    keep = {image["id"] for image in annotations["images"][:3]}
    annotations["images"] = annotations["images"][:3]
    annotations["annotations"] = [a for a in annotations["annotations"]
                                  if a["image_id"] in keep]
    (subset / "annotations" / "val.json").write_text(json.dumps(annotations))
    _, _, alone = evaluate_cell(cell, CellInputs(Path(entry["config"]),
                                                 checkpoint_path("rtmdet_tiny_shapes"), subset,
                                                 threads=2), [1, 3, 160, 160])
    assert alone["num_images"] == 3
    assert limited["metrics"]["bbox_mAP"] == alone["metrics"]["bbox_mAP"] > 0.3


def test_no_detections_is_an_explicit_zero(small_dataset: Path, tmp_path: Path) -> None:
    """A detector whose every prediction is below its score threshold: mmdet's CocoMetric
    returns no metric at all; the cell says 0 and *no detections* instead of vanishing."""
    entry = model_entry("rtmdet_tiny_shapes")
    config = tmp_path / "silent.py"
    config.write_text(f"_base_ = {entry['config']!r}\n"
                      "model = dict(test_cfg=dict(score_thr=1.01))\n")
    inputs = CellInputs(config, checkpoint_path("rtmdet_tiny_shapes"), small_dataset, threads=2)
    cell = Cell("rtmdet_tiny_shapes", "detection", "pytorch", "fp32")
    status, _, data = evaluate_cell(cell, inputs, [1, 3, 160, 160], limit=2)
    assert status == "ok" and data["no_detections"] is True
    assert data["metrics"] == {"bbox_mAP": 0.0, "bbox_mAP_50": 0.0}
