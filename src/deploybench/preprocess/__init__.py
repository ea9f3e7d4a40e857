"""Preprocessing paths: the tensor path (torch ops on the device) beside mmcv's reference."""
