"""QIDO-RS matching (PS3.18 §8.3.4, PS3.4 C.2.2.2): single values, UID lists, wildcards, date ranges,
and the attributes each level returns. Pure functions of pydicom headers."""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

STUDY_FIELDS = ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
                "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "StudyInstanceUID",
                "StudyID", "StudyDescription", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_FIELDS = ("Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID", "SeriesDate", "SeriesTime",
                 "NumberOfSeriesRelatedInstances")
INSTANCE_FIELDS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames")
PAGING = {"limit", "offset", "includefield", "fuzzymatching"}
_COMPUTED = {"ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
             "NumberOfSeriesRelatedInstances"}


class QueryError(ValueError):
    """A query parameter we cannot honour; the text names it."""


@dataclass
class Query:
    matches: dict[str, str] = field(default_factory=dict)  # keyword → value as sent
    include: set[str] = field(default_factory=set)
    include_all: bool = False
    limit: int | None = None
    offset: int = 0


def parse_query(params: Mapping[str, list[str]], *, max_limit: int = 1000) -> Query:
    query = Query()
    for name, values in params.items():
        if name == "limit":
            query.limit = min(_non_negative(name, values[-1]), max_limit)
        elif name == "offset":
            query.offset = _non_negative(name, values[-1])
        elif name == "fuzzymatching":
            continue
        elif name == "includefield":
            for value in ",".join(values).split(","):
                if value.strip() == "all":
                    query.include_all = True
                elif value.strip():
                    query.include.add(_keyword(value.strip()))
        else:
            query.matches[_keyword(name)] = values[-1]
    if query.limit is None:
        query.limit = max_limit
    return query


def _non_negative(name: str, text: str) -> int:
    if not text.isdigit():
        raise QueryError(f"{name} must be a non-negative integer, not {text!r}.")
    return int(text)


def _keyword(name: str) -> str:
    """A keyword ('PatientID') or a tag ('00100020'), checked against the dictionary."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        keyword = keyword_for_tag(Tag(int(name, 16)))
        if keyword:
            return keyword
    elif tag_for_keyword(name) is not None:
        return name
    raise QueryError(f"{name!r} is not a DICOM attribute keyword or tag this server can match on.")


# Matched without regard to case (as viewers such as OHIF expect of their search boxes): person names and free-text
# descriptions. Identifiers (PatientID, AccessionNumber) and code strings stay exact.
def _ignores_case(keyword: str, vr: str) -> bool:
    return vr == "PN" or (vr in ("LO", "SH", "ST", "LT", "UT") and keyword.endswith("Description"))


def matches(value: object, query_value: str, keyword: str) -> bool:
    """One attribute against one query value (PS3.4 C.2.2.2, PS3.18 §8.3.4.1)."""
    if query_value == "":
        return True  # universal matching: the attribute is only asked for
    vr = dictionary_VR(keyword)
    if isinstance(value, (list, tuple, MultiValue)):
        return any(matches(item, query_value, keyword) for item in value)  # multi-valued: any value matches
    text = "" if value is None else str(value)
    if vr in ("UI", "CS"):  # a list of values (`CR,DX` or `CR\DX`): any of them
        values = [item.strip() for item in re.split(r"[\\,]", query_value)]
        return any(_wildcard(text, item, False) if _wild(item) else text == item for item in values)
    if vr in ("DA", "DT", "TM") and "-" in query_value:
        low, high = query_value.split("-", 1)
        return bool(text) and (not low or text >= low) and (not high or text[:len(high)] <= high)
    if _wild(query_value):
        return _wildcard(text, query_value, _ignores_case(keyword, vr))
    if _ignores_case(keyword, vr):
        return text.casefold() == query_value.casefold()
    return text == query_value


def _wild(query_value: str) -> bool:
    return "*" in query_value or "?" in query_value


def _wildcard(text: str, pattern: str, ignore_case: bool) -> bool:
    if ignore_case:
        text, pattern = text.casefold(), pattern.casefold()
    return fnmatch.fnmatchcase(text, pattern.replace("[", "[[]"))


def select(records: Iterable[Dataset], query: Query, fields: tuple[str, ...]) -> list[Dataset]:
    """The matching records, paged, each reduced to the level's fields plus what was matched or included."""
    wanted = set(fields) | set(query.matches) | query.include
    found = [r for r in records if all(matches(r.get(k), v, k) for k, v in query.matches.items())]
    page = found[query.offset:query.offset + (query.limit if query.limit is not None else len(found))]
    return [_reduce(r, wanted, query.include_all) for r in page]


def _reduce(record: Dataset, wanted: set[str], include_all: bool) -> Dataset:
    out = Dataset()
    for element in record:
        binary = element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.keyword == "PixelData"
        if (include_all or element.keyword in wanted) and not binary:
            out.add(element)
    return out


def group_records(headers: Iterable[tuple[Dataset, str]], level: str) -> list[Dataset]:
    """Study, series or instance records from (header, kind) pairs, with the computed counts."""
    keys = {"studies": ("StudyInstanceUID",), "series": ("StudyInstanceUID", "SeriesInstanceUID"),
            "instances": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}[level]
    fields = {"studies": STUDY_FIELDS, "series": STUDY_FIELDS + SERIES_FIELDS,
              "instances": STUDY_FIELDS + SERIES_FIELDS + INSTANCE_FIELDS}[level]
    groups: dict[tuple, list[Dataset]] = {}
    for ds, _kind in headers:
        groups.setdefault(tuple(str(ds.get(k, "")) for k in keys), []).append(ds)
    records = []
    for members in groups.values():
        first = members[0]
        record = Dataset()
        for element in first:
            if element.keyword not in _COMPUTED and element.tag.group not in (0x0002, 0x7FE0):
                record.add(element)
        if level == "studies":
            record.ModalitiesInStudy = sorted({str(m.get("Modality", "")) for m in members if m.get("Modality")})
            record.NumberOfStudyRelatedSeries = len({str(m.get("SeriesInstanceUID", "")) for m in members})
            record.NumberOfStudyRelatedInstances = len(members)
        elif level == "series":
            record.NumberOfSeriesRelatedInstances = len(members)
        for keyword in fields:
            if keyword not in record and keyword not in _COMPUTED:
                setattr(record, keyword, None)  # asked-for attributes are present, if empty
        records.append(record)
    return records


def level_fields(level: str) -> tuple[str, ...]:
    return {"studies": STUDY_FIELDS, "series": STUDY_FIELDS + SERIES_FIELDS,
            "instances": STUDY_FIELDS + SERIES_FIELDS + INSTANCE_FIELDS}[level]
