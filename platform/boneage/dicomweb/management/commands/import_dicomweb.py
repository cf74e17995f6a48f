"""python manage.py import_dicomweb URL --project NAME [--study UID ...]: pull a PACS's image instances
over DICOMweb (QIDO to find, WADO to retrieve) into a project through the upload ingest."""
from __future__ import annotations

import io

from django.core.management.base import BaseCommand, CommandError

from boneage.studies.actions import do_ingest
from boneage.studies.management.commands._importing import ImportTally, project_by_name

NOT_IMAGES = {"SEG", "SR", "PR", "KO", "DOC", "RTSTRUCT"}  # derived objects, not radiographs


class Command(BaseCommand):
    help = "Import the image instances of a DICOMweb server (a PACS) into a project, with a progress bar and a summary."

    def add_arguments(self, parser):
        parser.add_argument("url", help="the DICOMweb root, e.g. http://pacs:8042/dicom-web")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--create", action="store_true", help="create the project if it does not exist")
        parser.add_argument("--study", action="append", default=[], metavar="UID", help="only this study (repeatable)")
        parser.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                            help="an HTTP header for every request, e.g. 'Authorization: Bearer …' (repeatable)")

    def handle(self, *args, **options):
        from dicomweb_client.api import DICOMwebClient
        from requests import RequestException

        headers = dict(_header(text) for text in options["header"])
        client = DICOMwebClient(options["url"].rstrip("/"), headers=headers)
        project = project_by_name(options["project"], create=options["create"], stdout=self.stdout)
        try:
            instances = _instances_to_pull(client, options["study"])
        except RequestException as exc:
            raise CommandError(f"Cannot search {options['url']}: {exc}")
        images = [i for i in instances if i[3] not in NOT_IMAGES]
        skipped = len(instances) - len(images)
        tally = ImportTally(len(images), "import_dicomweb")
        for study_uid, series_uid, sop_uid, _modality in images:
            name = f"{sop_uid}.dcm"
            try:
                ds = client.retrieve_instance(study_uid, series_uid, sop_uid)
            except RequestException as exc:
                tally.add(name, None, reason="retrieve_failed", detail=str(exc))
                continue
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            tally.add(name, do_ingest(project, None, buffer.getvalue(), name, channel="dicomweb", source="dicomweb"))
        self.stdout.write(f"import_dicomweb from {options['url']} into {project.name!r}: {tally.summary()}"
                          + (f"; skipped {skipped} non-image instances (SEG, SR, …)" if skipped else ""))


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise CommandError(f"--header takes 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def _instances_to_pull(client, study_uids: list[str]) -> list[tuple[str, str, str, str]]:
    """(study, series, instance, modality) UIDs, study by study; a named study the server lacks is an error."""
    if not study_uids:
        study_uids = [_value(s, "0020000D") for s in client.search_for_studies()]
    found = []
    for study_uid in study_uids:
        series = client.search_for_series(study_uid)
        if not series:
            raise CommandError(f"The server has no study {study_uid}.")
        for one in series:
            series_uid, modality = _value(one, "0020000E"), _value(one, "00080060")
            for instance in client.search_for_instances(study_uid, series_uid):
                found.append((study_uid, series_uid, _value(instance, "00080018"), modality))
    return found


def _value(item: dict, tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])
