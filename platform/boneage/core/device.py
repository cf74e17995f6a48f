"""Which device this process computes on, named without initialising CUDA (a forking pool must not have)."""
from __future__ import annotations

import os
import socket
from functools import lru_cache


@lru_cache(maxsize=1)
def describe_device() -> str:
    """'cuda:0 (GPU 3)' for a worker pinned with CUDA_VISIBLE_DEVICES=3, 'cpu' without a GPU; host-qualified."""
    import torch

    host = socket.gethostname()
    # The NVML-based check asks the driver without initialising the CUDA runtime, so a prefork pool's parent
    # (where worker_init runs) can still fork children that use CUDA (celery #3402).
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        pinned = f" (GPU {visible.split(',')[0]})" if visible else ""
        return f"{host}/cuda:0{pinned}"
    return f"{host}/cpu"
