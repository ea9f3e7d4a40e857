"""Training speed and memory, the model-zoo table's Mem and train s/iter: a model's own
training step (its config's train pipeline, data preprocessor, losses and optimizer wrapper) on
its dataset's train split, timed iteration by iteration (`timed`), from parts built the way
mmengine's Runner builds them (`parts`)."""
