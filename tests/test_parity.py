"""Output parity: the error measures on known arrays, box matching, and a real reference run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deploybench.cell import CellInputs
from deploybench.evaluate import ParitySettings, evaluate_cell, write_reference
from deploybench.export.onnx_export import export_onnx
from deploybench.parity import compare, load_reference, output_errors, save_reference
from deploybench.results import Cell

from .conftest import checkpoint_path, model_entry


def det(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict:
    return {"bboxes": np.array(boxes, np.float32).reshape(-1, 4),
            "scores": np.array(scores, np.float32), "labels": np.array(labels, np.int64)}


def test_output_errors_on_known_arrays() -> None:
    ref = [([np.array([1.0, -2.0, 4.0])], {})]
    cell = [([np.array([1.0, -2.0, 3.0])], {})]
    [row] = output_errors(cell, ref, ["out"])
    assert row["max_abs"] == 1.0 and row["max_rel"] == 0.25  # 1 / max|ref| = 1 / 4
    expected = (1 + 4 + 12) / (np.sqrt(14) * np.sqrt(21))
    assert row["cosine"] == pytest.approx(expected)
    [same] = output_errors(ref, ref, ["out"])
    assert same["max_abs"] == 0 and same["cosine"] == pytest.approx(1.0)


def test_detection_agreement_matches_label_and_iou() -> None:
    ref = det([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 5]], [0.9, 0.8, 0.1], [0, 1, 0])
    # Box 1 found slightly moved with a lower score; box 2 found with the wrong label; the
    # 0.1-score box is below the threshold and not counted.
    cell = det([[1, 0, 11, 10], [20, 20, 30, 30]], [0.85, 0.8], [0, 2])
    result = compare("detection", [([], cell)], [([], ref)], [], iou=0.5, score_threshold=0.3)
    assert result["reference_boxes"] == 2
    assert result["boxes_matched"] == 0.5
    assert result["mean_score_diff"] == pytest.approx(0.05)
    # The other way: of the cell's two confident boxes, the wrongly labelled one is not in the
    # reference.
    assert (result["cell_boxes"], result["cell_boxes_matched"]) == (2, 0.5)
    # Boxes a backend adds are seen, though every reference box is found.
    extra = det([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [0, 1, 1])
    both = compare("detection", [([], extra)], [([], ref)], [])
    assert both["boxes_matched"] == 1.0 and both["cell_boxes_matched"] == pytest.approx(2 / 3)
    # One cell box cannot match two reference boxes.
    ref2 = det([[0, 0, 10, 10], [0, 0, 10, 9]], [0.9, 0.8], [0, 0])
    cell2 = det([[0, 0, 10, 10]], [0.9], [0])
    assert compare("detection", [([], cell2)], [([], ref2)], [])["boxes_matched"] == 0.5
    empty = compare("detection", [([], det([], [], []))], [([], ref)], [])
    assert empty["boxes_matched"] == 0.0
    # Over no confident reference box the share is undefined (n/a), not 100 %.
    none = compare("detection", [([], cell)], [([], det([[0, 0, 5, 5]], [0.1], [0]))], [])
    assert none["reference_boxes"] == 0 and none["boxes_matched"] is None


def test_segmentation_agreement() -> None:
    ref = {"labels": np.array([[0, 1], [1, 1]])}
    cell = {"labels": np.array([[0, 1], [0, 1]])}
    assert compare("segmentation", [([], cell)], [([], ref)], [])["pixel_agreement"] == 0.75


def test_reference_round_trip(tmp_path: Path) -> None:
    samples = [([np.ones((1, 2), np.float32), np.zeros(3)], det([[0, 0, 1, 1]], [0.5], [1]))]
    save_reference(tmp_path / "r.npz", samples, ["a", "b"])
    loaded, names = load_reference(tmp_path / "r.npz")
    assert names == ["a", "b"] and len(loaded) == 1
    np.testing.assert_array_equal(loaded[0][0][0], samples[0][0][0])
    np.testing.assert_array_equal(loaded[0][1]["labels"], [1])


def test_cells_compare_against_the_pytorch_reference(detector, small_dataset: Path,
                                                     tmp_path: Path) -> None:
    entry = model_entry("rtmdet_tiny_shapes")
    _, sample, _ = next(detector.batches(detector.dataset(small_dataset)))
    export_onnx(detector, sample, tmp_path / "d.onnx", 17)
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset, tmp_path / "d.onnx", threads=2)
    info = write_reference(inputs, [1, 3, 160, 160], 4, tmp_path / "ref.npz")
    assert info["images"] == 4 and len(info["outputs"]) == 6
    parity = ParitySettings(tmp_path / "ref.npz", images=4)
    for backend in ("pytorch", "onnxruntime"):
        cell = Cell("rtmdet_tiny_shapes", "detection", backend, "fp32")
        status, _, data = evaluate_cell(cell, inputs, [1, 3, 160, 160], 4, parity)
        result = data["parity"]
        assert status == "ok" and result["images"] == 4 and len(result["outputs"]) == 6
        assert result["reference_boxes"] > 0 and result["boxes_matched"] == 1.0
        worst = max(o["max_rel"] for o in result["outputs"])
        assert worst < 1e-4 and min(o["cosine"] for o in result["outputs"]) > 0.99999
        if backend == "pytorch":  # the reference itself, the same computation
            assert worst == 0.0
