#!/usr/bin/env python
"""Django's command-line utility. The Django project lives in platform/boneage."""
import os
import sys
from pathlib import Path

# `platform` shadows a standard-library module, so it is never a package: put it on the path instead.
sys.path.insert(0, str(Path(__file__).resolve().parent / "platform"))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boneage.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
