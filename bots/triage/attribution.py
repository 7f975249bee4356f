"""attribution.txt: the fields the taxonomy asks for and the licence allow-list.

The taxonomy's template is five ``Field: value`` lines. Contributors write the field names in many
ways (``license:``, ``License:``, ``[License of the work] = ...``, ``license_of_the_work:``); they
are recognised by their letters. A file may attribute several works: each block is checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bots.triage.findings import Finding, make

FIELDS = ("Title of work", "Link to work", "Revision", "License of the work", "Creator names")

# Field spellings seen in contributors' files, reduced to lower-case letters.
_FIELD_ALIASES: dict[str, str] = {
    "titleofwork": "Title of work",
    "titleofthework": "Title of work",
    "title": "Title of work",
    "nameofwork": "Title of work",
    "linktowork": "Link to work",
    "linktothework": "Link to work",
    "linkofwork": "Link to work",
    "link": "Link to work",
    "url": "Link to work",
    "source": "Link to work",
    "revision": "Revision",
    "revisionofwork": "Revision",
    "version": "Revision",
    "licenseofthework": "License of the work",
    "licenseofwork": "License of the work",
    "licenceofthework": "License of the work",
    "licenceofwork": "License of the work",
    "license": "License of the work",
    "licence": "License of the work",
    "spdxlicenseidentifier": "License of the work",
    "creatornames": "Creator names",
    "creatorname": "Creator names",
    "creators": "Creator names",
    "creator": "Creator names",
    "authors": "Creator names",
    "author": "Creator names",
}

_LINE = re.compile(r"^\s*\[?\s*([A-Za-z][A-Za-z _-]{1,40}?)\s*\]?\s*[:=]\s?(.*)$")

# Spellings of accepted licences, reduced to lower-case letters and digits.
_LICENSE_SPELLINGS: dict[str, str] = {
    "cc010": "CC0-1.0",
    "cc0": "CC0-1.0",
    "cc0v10": "CC0-1.0",
    "cc010universal": "CC0-1.0",
    "creativecommonszero10": "CC0-1.0",
    "creativecommonszerov10universal": "CC0-1.0",
    "cdlapermissive20": "CDLA-Permissive-2.0",
    "communitydatalicenseagreementpermissive20": "CDLA-Permissive-2.0",
    "communitydatalicenseagreementpermissiveversion20": "CDLA-Permissive-2.0",
    "ccby40": "CC-BY-4.0",
    "ccby40international": "CC-BY-4.0",
    "creativecommonsattribution40": "CC-BY-4.0",
    "creativecommonsattribution40international": "CC-BY-4.0",
    "creativecommonsattribution40internationallicense": "CC-BY-4.0",
    "creativecommonsattribution40internationalccby40": "CC-BY-4.0",
    "ccbysa40": "CC-BY-SA-4.0",
    "ccbysa40international": "CC-BY-SA-4.0",
    "creativecommonsattributionsharealike40": "CC-BY-SA-4.0",
    "creativecommonsattributionsharealike40license": "CC-BY-SA-4.0",
    "creativecommonsattributionsharealike40international": "CC-BY-SA-4.0",
    "creativecommonsattributionsharealike40internationallicense": "CC-BY-SA-4.0",
    "creativecommonsattributionsharealike40internationalccbysa40": "CC-BY-SA-4.0",
    "apache20": "Apache-2.0",
    "apachev20": "Apache-2.0",
    "apachelicense20": "Apache-2.0",
    "apachelicensev20": "Apache-2.0",
    "apachelicenseversion20": "Apache-2.0",
    "apachesoftwarelicense20": "Apache-2.0",
    "al20": "Apache-2.0",
    "mit": "MIT",
    "mitlicense": "MIT",
    "mitlicence": "MIT",
    "theexpatlicense": "MIT",
}


def _letters(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def normalize_license(text: str) -> str | None:
    """The SPDX id of an accepted licence written in a common way, or None."""
    key = _letters(text)
    for suffix in ("", "license", "licence"):
        if suffix and key.endswith(suffix):
            key = key[: -len(suffix)]
        if key in _LICENSE_SPELLINGS:
            return _LICENSE_SPELLINGS[key]
    return None


@dataclass(frozen=True)
class Entry:
    field: str
    value: str
    line: int
    column: int


def parse(text: str) -> list[list[Entry]]:
    """The attribution blocks of a file: a block ends where a field appears a second time."""
    blocks: list[list[Entry]] = [[]]
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        if match is None:
            continue
        name = _FIELD_ALIASES.get(_letters(match.group(1)))
        if name is None:
            continue
        if any(entry.field == name for entry in blocks[-1]):
            blocks.append([])
        value = match.group(2).strip()
        blocks[-1].append(Entry(name, value, number, match.start(2) + 1))
    return [block for block in blocks if block] or [[]]


def check_attribution(text: str, licenses: Sequence[str]) -> list[Finding]:
    """Findings for the text of an attribution.txt (already decoded)."""
    if not text.strip():
        return [make("attribution/empty", 1, 1)]
    findings: list[Finding] = []
    allowed = set(licenses)
    entries = [entry for block in parse(text) for entry in block]
    present = {entry.field for entry in entries}
    # A missing field is reported once per file, however many works it lists.
    for name in FIELDS:
        if name not in present:
            findings.append(make("attribution/missing-field", 1, 1, field=name))
    for entry in entries:
        if not entry.value:
            findings.append(make("attribution/empty-field", entry.line, 1, field=entry.field))
        elif entry.field == "License of the work":
            spdx = normalize_license(entry.value) or entry.value.strip()
            if spdx not in allowed:
                findings.append(
                    make(
                        "attribution/license",
                        entry.line,
                        entry.column,
                        license=entry.value,
                        allowed=", ".join(licenses),
                    )
                )
        elif entry.field == "Link to work" and not re.match(r"^https?://\S+", entry.value):
            findings.append(make("attribution/link", entry.line, entry.column, link=entry.value))
    return findings
