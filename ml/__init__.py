"""Pure PyTorch/numpy core: phantoms, Canny automask, the unified network, training, inference. Never imports Django."""
