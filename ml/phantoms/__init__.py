"""Synthetic pediatric hand radiographs with ground truth (issue 3).

    from ml.phantoms import render, generate_cohort, Phantom, CohortResult

`render(age_months, male, seed, size=512, distractors="none")` → Phantom(image uint16, mask uint8 0/255,
meta dict); `generate_cohort(out_dir, n, seed, ...)` writes an RSNA-style folder (or DICOM files).
"""
from ml.phantoms.cohort import CohortResult, generate_cohort
from ml.phantoms.render import Phantom, render

__all__ = ["CohortResult", "Phantom", "generate_cohort", "render"]
