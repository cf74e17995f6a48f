"""A project's AE title: the called AE title a modality or PACS names to store into it through the DICOM node.

PS3.5 AE VR: at most 16 characters of the default repertoire, no backslash and no control characters; leading and
trailing spaces are not significant (they are stripped), so a title of spaces only is blank.
"""
from __future__ import annotations

import re

from django.db.models import QuerySet

AE_TITLE_MAX = 16


def check_ae_title(raw: str) -> str:
    """The title as stored (stripped), or ValueError with the reason in words."""
    title = (raw or "").strip(" ")
    if not title:
        raise ValueError("An AE title cannot be blank.")
    if len(title) > AE_TITLE_MAX:
        raise ValueError(f"An AE title has at most {AE_TITLE_MAX} characters; {title!r} has {len(title)}.")
    if "\\" in title:
        raise ValueError("An AE title cannot contain a backslash (\\).")
    if any(not (" " <= ch <= "~") for ch in title):
        raise ValueError("An AE title holds only printable ASCII characters (letters, digits, spaces, punctuation), "
                         "no control characters.")
    return title


def derived_ae_title(name: str) -> str:
    """A title from a project's name: upper-case letters and digits, other runs as one underscore, 16 at most."""
    slug = re.sub(r"[^A-Z0-9]+", "_", (name or "").upper()).strip("_")
    return slug[:AE_TITLE_MAX].rstrip("_") or "BONEAGE"


def free_ae_title(name: str, others: QuerySet) -> str:
    """The derived title, or with a number after it (`HAND_STUDY_2`) when another project holds it."""
    base = derived_ae_title(name)
    taken = set(others.filter(ae_title__startswith=base[:8]).values_list("ae_title", flat=True))
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        suffix = f"_{number}"
        candidate = base[: AE_TITLE_MAX - len(suffix)] + suffix
    return candidate
