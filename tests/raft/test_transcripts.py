"""Transcript tests: each testdata/*.txt is a script whose trace must not change.

Regenerate after an intended behaviour change, then review the diff:
    PYETCD_REWRITE_TRANSCRIPTS=1 python -m pytest tests/raft/test_transcripts.py
    (or: python -m tests.raft.transcript --rewrite)
"""
from __future__ import annotations

import difflib
import os

import pytest

from .transcript import TESTDATA, parse, render

FILES = sorted(TESTDATA.glob("*.txt"))
REWRITE = os.environ.get("PYETCD_REWRITE_TRANSCRIPTS") == "1"


def test_there_are_transcripts():
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_transcript(path):
    want, got = render(path)
    if REWRITE:
        path.write_text(got)
        return
    if want != got:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                            "expected", "actual"))
        pytest.fail(f"{path.name} differs (PYETCD_REWRITE_TRANSCRIPTS=1 to regenerate):\n{diff}")


def test_parse_rejects_stray_text():
    with pytest.raises(ValueError):
        parse("stray\n> campaign 1\n")
    assert parse("# c\n> a 1\nout\n\n> b\n") == [("a 1", "out"), ("b", "")]
