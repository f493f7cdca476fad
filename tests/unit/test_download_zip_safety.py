"""Property: a zip entry name the download accepts can never land outside the extraction root."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bridge.files import unsafe_member_reason

_SEGMENTS = st.sampled_from(["..", ".", "a", "b.onnx", "", "C:", "~", "..."])
_SEPARATORS = st.sampled_from(["/", "\\", "//"])


@st.composite
def entry_names(draw: st.DrawFn) -> str:
    segments = draw(st.lists(_SEGMENTS, min_size=1, max_size=6))
    separators = draw(st.lists(_SEPARATORS, min_size=len(segments), max_size=len(segments)))
    leading = draw(st.sampled_from(["", "/", "\\"]))
    return leading + "".join(s + sep for s, sep in zip(segments, separators, strict=True))[:-1]


ROOT = Path(tempfile.gettempdir()) / "rerank-bridge-zip-safety" / "root"


@given(entry_names())
def test_accepted_entry_names_stay_inside_the_root(name: str) -> None:
    info = zipfile.ZipInfo(name)
    if unsafe_member_reason(info) is None:
        # zipfile's extraction on POSIX treats "\\" as a plain character; both readings must be safe
        for candidate in (info.filename, info.filename.replace("\\", "/")):
            destination = (ROOT / candidate).resolve()
            assert destination == ROOT.resolve() or ROOT.resolve() in destination.parents
