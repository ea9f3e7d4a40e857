"""OpenCV's bilinear resize of uint8 images (cv2.INTER_LINEAR), in torch ops on any device.

mmcv's `Resize` calls cv2.resize, which for uint8 works in fixed point: 11-bit interpolation
weights rounded from float32 coordinates, a horizontal pass into int32, and a vertical pass
that rounds as OpenCV's SIMD kernel does. Reproducing that integer arithmetic (instead of
`F.interpolate` in float) gives the same bytes as the reference pipeline, so the tensor
preprocessing path matches it exactly rather than to within a grey level.
"""

from __future__ import annotations

import numpy as np
import torch

COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS


def _taps(src: int, dst: int, device: torch.device, clamp_weights: bool
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (left, right) and fixed-point weights (w0, w1) per output coordinate.

    Beyond the border OpenCV moves the horizontal taps inside with weights (1, 0), but keeps the
    vertical weights and only clamps the row index: `clamp_weights` is True for x, False for y.
    """
    scale = np.float64(src) / np.float64(dst)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low = s < 0
        f[low], s[low] = 0, 0
        high = s >= src - 1
        f[high], s[high] = 0, src - 1
    w1 = np.rint(f * np.float32(COEF_SCALE)).astype(np.int64)
    w0 = np.rint((np.float32(1) - f) * np.float32(COEF_SCALE)).astype(np.int64)
    right = np.clip(s + 1, 0, src - 1)
    s = np.clip(s, 0, src - 1)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return as_t(s), as_t(right), torch.stack([as_t(w0), as_t(w1)])


def resize_linear_u8(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)` for an HxWxC uint8
    tensor, on the tensor's device."""
    src_h, src_w = image.shape[:2]
    if (src_h, src_w) == (height, width):
        return image
    x = image.to(torch.int32)
    x0, x1, wx = _taps(src_w, width, image.device, clamp_weights=True)
    y0, y1, wy = _taps(src_h, height, image.device, clamp_weights=False)
    # Horizontal pass: int32 rows of S[sx] * w0 + S[sx + 1] * w1 (values up to 255 << 11).
    rows = x[:, x0] * wx[0].view(1, -1, 1) + x[:, x1] * wx[1].view(1, -1, 1)
    # Vertical pass as OpenCV's vector kernel: (((b0 * (S0 >> 4)) >> 16) +
    # ((b1 * (S1 >> 4)) >> 16) + 2) >> 2, saturated to uint8.
    top = ((rows[y0] >> 4) * wy[0].view(-1, 1, 1)) >> 16
    bottom = ((rows[y1] >> 4) * wy[1].view(-1, 1, 1)) >> 16
    return ((top + bottom + 2) >> 2).clamp_(0, 255).to(torch.uint8)
