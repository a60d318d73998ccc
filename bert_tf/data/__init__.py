"""Data: pretraining instances and masking schemes, TFRecord formats, inputs."""
