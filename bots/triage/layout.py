"""Where a file sits and what it is called, judged from its path alone.

What a pull request may contain:

* ``<root>/<taxonomy path>/qna.yaml`` with root compositional_skills or knowledge;
* ``attribution.txt`` beside it (required for version > 1);
* maintainer files outside the taxonomy (README.md, docs/, .github/, scripts/ ... see
  ``TriageConfig.maintainer_paths``): allowed, with a warning asking for a maintainer's review.

Everything else is flagged: misnamed taxonomy files (qna.yml, qna.yaml.txt, qna2.yaml ...),
foundational_skills/ (closed to new contributions), files outside the roots, generated data,
code, binaries and model files, OS metadata such as .DS_Store.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Literal

from bots.triage import messages
from bots.triage.config import CONFIG_PATH, TriageConfig
from bots.triage.findings import Finding, make

Category = Literal["qna", "attribution", "config", "other"]

QNA_NAME = "qna.yaml"
ATTRIBUTION_NAME = "attribution.txt"

_JUNK = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".directory", "icon\r"})
_GENERATED = re.compile(
    r"(?:\.jsonl|\.parquet|\.arrow)$|^(?:train|test|generated|messages)_.*\.json$", re.I
)
_CODE_NAMES = frozenset(
    {
        "dockerfile",
        "containerfile",
        "makefile",
        "requirements.txt",
        "setup.py",
        "pyproject.toml",
        "package.json",
        "package-lock.json",
        "go.mod",
        "cargo.toml",
        "compose.yaml",
        "docker-compose.yml",
        "docker-compose.yaml",
    }
)
_CODE_EXT = frozenset(
    ".py .pyc .sh .bash .zsh .ps1 .bat .cmd .js .mjs .ts .go .rs .java .kt .c .h .cc .cpp .hpp "
    ".rb .php .pl .lua .ipynb .r .scala .swift .cs .sql .toml .ini .cfg .conf .env".split()
)
_BINARY_EXT = frozenset(
    ".png .jpg .jpeg .gif .bmp .tif .tiff .webp .svg .ico .heic .pdf .doc .docx .xls .xlsx .ppt "
    ".pptx .odt .epub .zip .tar .gz .tgz .bz2 .xz .7z .rar .whl .jar .exe .dll .so .dylib .bin "
    ".gguf .ggml .safetensors .pt .pth .ckpt .onnx .h5 .pb .tflite .model .npy .npz .pkl .pickle "
    ".mp3 .mp4 .wav .flac .ogg .mov .avi .mkv .webm .ttf .otf .woff .woff2 .db .sqlite".split()
)
_QNA_LIKE = re.compile(r"q[nu]?a|\.ya?ml|\.yamil|\.ymal|\.yml", re.I)
_ATTRIBUTION_LIKE = re.compile(r"att?rib|licen[cs]e|credits?", re.I)
_SNAKE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_BAD_PATH = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Placement:
    category: Category
    root: str | None
    findings: list[Finding] = field(default_factory=list)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def snake(segment: str) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "_", segment.strip()).strip("_").lower()
    return re.sub(r"_+", "_", text) or "name"


def _unexpected(name: str) -> Finding | None:
    lowered = name.lower()
    if lowered in _JUNK or lowered.startswith("._") or lowered.endswith(("~", ".swp", ".bak")):
        return make("layout/filename-junk", 1, 1, name=name)
    if _GENERATED.search(name):
        return make("layout/unexpected-generated", 1, 1, name=name)
    if lowered in _CODE_NAMES or _suffix(name) in _CODE_EXT:
        return make("layout/unexpected-code", 1, 1, name=name)
    if _suffix(name) in _BINARY_EXT:
        return make("layout/unexpected-binary", 1, 1, name=name)
    return None


def classify(path: str, config: TriageConfig) -> Placement:
    parts = path.split("/")
    name = parts[-1]
    root = parts[0] if len(parts) > 1 else None
    if _BAD_PATH.search(path) or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return Placement("other", root, [make("layout/unexpected-file", 1, 1, name=path)])
    if path == CONFIG_PATH:
        return Placement("config", root)
    accepted = root in config.accepted_roots
    refused = root in config.refused_roots
    placement_findings: list[Finding] = []
    if refused:
        placement_findings.append(make("layout/root-refused", 1, 1, root=root))

    if name == QNA_NAME:
        if not accepted and not refused:
            placement_findings.append(
                make("layout/root", 1, 1, path=path, roots=messages.ALLOWED_ROOTS_TEXT)
            )
        placement_findings.extend(_style(parts, config))
        return Placement("qna", root, placement_findings)
    if name == ATTRIBUTION_NAME and (accepted or refused):
        return Placement("attribution", root, placement_findings)

    unexpected = _unexpected(name)
    if not (accepted or refused):
        if unexpected is None and _maintainer_path(path, config):
            return Placement("other", root, [make("layout/outside-taxonomy", 1, 1, path=path)])
    if unexpected is not None:
        return Placement("other", root, [*placement_findings, unexpected])
    if name == ATTRIBUTION_NAME:
        placement_findings.append(
            make("layout/root", 1, 1, path=path, roots=messages.ALLOWED_ROOTS_TEXT)
        )
    elif _ATTRIBUTION_LIKE.search(name):
        placement_findings.append(make("layout/filename-attribution", 1, 1, name=name))
    elif _QNA_LIKE.search(name):
        placement_findings.append(make("layout/filename", 1, 1, name=name))
    else:
        placement_findings.append(make("layout/unexpected-file", 1, 1, name=name))
    return Placement("other", root, placement_findings)


def _maintainer_path(path: str, config: TriageConfig) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in config.maintainer_paths)


def _style(parts: list[str], config: TriageConfig) -> list[Finding]:
    if parts[0] not in config.accepted_roots:
        return []
    for segment in parts[1:-1]:
        if not _SNAKE.match(segment):
            return [make("layout/path-style", 1, 1, segment=segment, suggestion=snake(segment))]
    return []
