"""What a package says about itself: name, description, authors, licence and citations.

Authors, licence and citations are remembered between exports
(:mod:`...preferences`), so a lab types them once; the name and description
default to the model's own. Each kind also cites the method it implements.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.preferences import export_defaults, remember_export_defaults

DEFAULT_LICENCE = "CC-BY-4.0"
NAME_CHARACTERS = set(string.ascii_letters + string.digits + "_+- ()")
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")


@dataclass(frozen=True)
class Citation:
    """A work to cite: its text and a DOI or a URL."""

    text: str
    doi: str | None = None
    url: str | None = None

    def as_text(self) -> str:
        """``text | doi-or-url``, as :func:`parse_citation` reads it."""
        return f"{self.text} | {self.doi or self.url}"


METHOD_CITATIONS: dict[str, tuple[Citation, ...]] = {
    "stardist2d": (Citation("Schmidt et al., Cell Detection with Star-convex Polygons, MICCAI 2018",
                            "10.1007/978-3-030-00934-2_30"),),
    "stardist3d": (Citation("Weigert et al., Star-convex Polyhedra for 3D Object Detection and Segmentation in "
                            "Microscopy, WACV 2020", "10.1109/WACV45572.2020.9093435"),),
    "n2v": (Citation("Krull et al., Noise2Void - Learning Denoising from Single Noisy Images, CVPR 2019",
                     "10.1109/CVPR.2019.00223"),),
    "n2v2": (Citation("Hoeck et al., N2V2 - Fixing Noise2Void Checkerboard Artifacts with Modified Sampling "
                      "Strategies and a Tweaked Network Architecture, ECCV Workshops 2022",
                      "10.1007/978-3-031-25069-9_33"),),
    "care": (Citation("Weigert et al., Content-aware image restoration: pushing the limits of fluorescence "
                      "microscopy, Nature Methods 2018", "10.1038/s41592-018-0216-7"),),
    "semantic": (Citation("Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation, "
                          "MICCAI 2015", "10.1007/978-3-319-24574-4_28"),),
}


@dataclass(frozen=True)
class ExportMeta:
    """The package's metadata; None or empty fields take the model's or the remembered defaults."""

    name: str | None = None
    description: str | None = None
    authors: tuple[str, ...] = ()
    licence: str | None = None
    citations: tuple[Citation, ...] = field(default_factory=tuple)


def parse_citation(text: str) -> Citation:
    """``"Some paper, 2026 | 10.1234/abcd"`` (or ``| https://...``) as a :class:`Citation`."""
    words, sep, ref = text.rpartition("|")
    words, ref = words.strip(), ref.strip()
    if not sep or not words or not ref:
        raise UserError(f"the citation '{text}' needs a text and a DOI or URL",
                        "write it as 'Author et al., title, year | 10.xxxx/yyyy' (or '| https://...')")
    if ref.lower().startswith(("https://doi.org/", "http://doi.org/")):
        ref = ref.split("doi.org/", 1)[1]
    if _DOI.match(ref):
        return Citation(words, doi=ref)
    if ref.startswith(("http://", "https://")):
        return Citation(words, url=ref)
    raise UserError(f"'{ref}' is neither a DOI nor a URL", "give a DOI (10.xxxx/yyyy) or an https:// address")


def check_name(name: str) -> str:
    """``name`` as bioimage.io allows it (5 to 128 letters, digits, spaces, ``_+-()``), or a clear error."""
    name = " ".join(name.split())
    bad = sorted(set(name) - NAME_CHARACTERS)
    if bad or not 5 <= len(name) <= 128:
        raise UserError(f"'{name}' cannot name a bioimage.io model" + (f" (it has {''.join(bad)!r})" if bad else
                        " (it needs 5 to 128 characters)"),
                        "use 5 to 128 letters, digits, spaces and _ + - ( )")
    return name


def default_name(model_name: str, title: str) -> str:
    """A valid package name made from a model's name and its kind's title."""
    cleaned = "".join(c if c in NAME_CHARACTERS else " " for c in model_name)
    name = " ".join(f"{cleaned} ({title})".split())
    return name[:128] if len(name) >= 5 else f"{title} model"


def resolved(meta: ExportMeta, remember: bool = True) -> ExportMeta:
    """``meta`` with the remembered authors, licence and citations where it gives none.

    What it gives is remembered for the next export (``remember``). No author at all is a clear error:
    a package names the people to ask about it.
    """
    saved = export_defaults()
    authors = tuple(a.strip() for a in meta.authors if a.strip()) or tuple(saved.get("authors") or ())
    if not authors:
        raise UserError("a bioimage.io package names its authors, and none was given",
                        "give the author(s) (CLI: --author NAME, once per author); they are remembered")
    licence = meta.licence or saved.get("licence") or DEFAULT_LICENCE
    citations = meta.citations
    if not citations and saved.get("citations"):
        citations = tuple(parse_citation(c) for c in saved["citations"])
    if remember:
        remember_export_defaults(list(authors), licence, [c.as_text() for c in citations])
    return ExportMeta(meta.name, meta.description, authors, licence, citations)
