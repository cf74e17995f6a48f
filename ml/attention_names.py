"""The residual attention network's six attention modules, by name (ml.models.attention builds them).

Apart from the network so that the platform's web process can name the overlay files without importing torch.
"""
from __future__ import annotations

ATTENTION_NAMES = ("Att1_1", "Att2_1", "Att2_2", "Att3_1", "Att3_2", "Att3_3")
