"""Every history in ../shared/corpus gets the verdict its manifest gives.

The corpus is read in place (never copied into the project); the tests skip
when it is absent. Each file is checked with the model, initial value and
semantics (failed cas observed / no-effect, nil read absent / wildcard) its
manifest entry names (read by checker.manifest, as `harness check
--manifest` reads it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checker import check_file
from checker.manifest import Entry, load_manifest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not (CORPUS / "manifest.json").is_file(),
                                reason="../shared/corpus is absent")


def _entries() -> list[Entry]:
    if not (CORPUS / "manifest.json").is_file():
        return []
    return list(load_manifest(CORPUS / "manifest.json").entries.values())


def test_manifest_lists_all_230_histories():
    assert len(_entries()) == 230


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e.file)
def test_corpus_verdict(entry: Entry):
    res = check_file(CORPUS / entry.file, entry.model, 60, **entry.semantics)
    assert res.valid is entry.expected, [a.sentence for a in res.anomalies]
    if res.valid is False:
        a = res.anomalies[0]
        assert a.sentence and a.ops
        assert isinstance(res.to_dict()["anomalies"][0]["prefix"], list)


def test_etcd_verdicts_do_not_depend_on_the_failed_cas_reading():
    # The manifest notes that porcupine's etcd verdicts are the same with
    # failed cas as no-effect; checking both exercises both semantics.
    for e in _entries():
        if e.file.startswith("porcupine/etcd/etcd_00"):
            sem = {**e.semantics, "fail_cas": "noeffect"}
            assert check_file(CORPUS / e.file, e.model, 60, **sem).valid is e.expected


def test_knossos_semantics_as_the_manifest_notes_say():
    # Knossos' own model: (cas-register 0) with nil reads as wildcards gives
    # the same verdicts; read failed cas as observed mismatches instead and
    # exactly 36 good files become invalid (the manifest's note).
    flipped = 0
    for e in _entries():
        if e.file.startswith("knossos/cas-register/"):
            knossos = {"initial": 0, "nil_read": "wildcard"}
            res = check_file(CORPUS / e.file, e.model, 60, **knossos)
            assert res.valid is e.expected, e.file
        if e.file.startswith("knossos/cas-register/good/"):
            sem = {**knossos, "fail_cas": "observed"}
            flipped += check_file(CORPUS / e.file, e.model, 60, **sem).valid is False
    assert flipped == 36


def test_harness_check_corpus_matches_manifest():
    out = subprocess.run(
        [sys.executable, "-m", "harness", "check", str(CORPUS), "--json",
         "--manifest", str(CORPUS / "manifest.json")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 1, out.stderr  # the corpus has invalid histories
    summary = json.loads(out.stdout)["summary"]
    assert summary["mismatches"] == []
    assert summary["files"] == 230 and summary["error"] == 0 and summary["unknown"] == 0
    files = json.loads(out.stdout)["files"]
    assert sum("expected" in f for f in files) == 230  # every file was matched to its entry
