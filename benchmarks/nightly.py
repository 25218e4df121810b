"""A simulated month of nightly Bulk `_since` deltas over a generated population (issue 28).

`Month(folder, seed)` loads a population written by benchmarks/population.py (its NDJSON, as raw
lines keyed by (type, id), owned by the patient each names) and `night(k, day)` makes the delta of
night k: about `touch` of the patients get one change each, of these kinds:

- a new laboratory result dated that day (a copy of one of the patient's lab results, value moved);
- a new diagnosis (another patient's Condition, moved to this patient, recorded that day);
- a correction: a new version of one of the patient's resources (versionId and lastUpdated bumped,
  a value moved or the status set to entered-in-error);
- a stale resend: a version of a resource older than the one held (the store must keep the newer);
- a deletion: a Bundle line with a `DELETE Type/id` request, as Bulk Data lists deleted resources;
- a new patient: a copy of the patient's whole record under a new id.

The model applies each delta itself, with its own plain rules (replace unless older, delete), and
`write_current(path)` writes the data as it stands: what a full re-screen reads. Used by
tests/test_incremental.py (small N) and benchmarks/bench_nightly.py.
"""
from __future__ import annotations

import random
import re
from collections import defaultdict
from datetime import date
from pathlib import Path

import orjson

from fhir3t.fhirutil import patient_id

#: ids population.py gives what the criteria read (labs -xN, the diagnosis -dm, the questionnaire -qr,
#: rituximab -rtx) and this module's new labs and diagnoses (-nK, -dK)
_SCREENING = re.compile(r"-(x\d+|dm|qr|rtx|n\d+|d\d+)$")
KINDS = ("lab", "diagnosis", "correction", "stale", "delete", "new-patient")
WEIGHTS = (30, 20, 20, 5, 15, 10)


class Month:
    def __init__(self, folder: Path, seed: int = 0, touch: float = 0.01) -> None:
        self.rng = random.Random(seed)
        self.touch = touch
        #: (type, id) -> the newest version as NDJSON bytes (parsed when changed: a 10 000-patient month
        #: holds a million); a deleted resource is removed
        self.res: dict[tuple[str, str], bytes] = {}
        self.owner: dict[tuple[str, str], str] = {}
        self.by_patient: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for p in sorted(Path(folder).rglob("*.ndjson")):
            with open(p, "rb") as fh:
                for line in fh:
                    if line.strip():
                        self._put(orjson.loads(line), line.rstrip(b"\n"))
        self.conditions = [k for k in self.res if k[0] == "Condition"]
        self.counts: dict[str, int] = defaultdict(int)

    def _put(self, res: dict, line: bytes | None = None) -> None:
        key = (res["resourceType"], res["id"])
        pid = patient_id(res) or ""
        old = self.owner.get(key)
        if old is not None and old != pid:
            self.by_patient[old].discard(key)
        self.res[key] = line if line is not None else orjson.dumps(res)
        self.owner[key] = pid
        self.by_patient[pid].add(key)

    def _current(self, key: tuple[str, str]) -> dict:
        return dict(orjson.loads(self.res[key]))

    @staticmethod
    def _version(res: dict) -> int:
        v = (res.get("meta") or {}).get("versionId")
        return int(v) if isinstance(v, str) and v.isdigit() else 1

    def _bump(self, res: dict, day: date) -> dict:
        new = orjson.loads(orjson.dumps(res))
        meta = new.setdefault("meta", {})
        meta["versionId"] = str(self._version(res) + 1)
        meta["lastUpdated"] = f"{day.isoformat()}T02:00:00Z"
        return new

    def night(self, k: int, day: date) -> list[bytes]:
        """The delta of night k (NDJSON lines), applied to the model."""
        rng = self.rng
        patients = sorted(p for p in self.by_patient if p and self.by_patient[p])
        out: list[bytes] = []
        n = max(1, round(len(patients) * self.touch))
        # half of the patients touched are ones the screening has something on (patients in care)
        cared = [p for p in patients if any(_SCREENING.search(k_[1]) for k_ in self.by_patient[p])]
        chosen = set(rng.sample(cared, min(len(cared), n // 2)))
        chosen |= set(rng.sample([p for p in patients if p not in chosen], min(n - len(chosen), len(patients) - len(chosen))))
        for pid in sorted(chosen):
            kind = rng.choices(KINDS, WEIGHTS)[0]
            keys = sorted(k_ for k_ in self.by_patient[pid] if k_[0] != "Patient")
            if not keys:
                continue
            # corrections, resends and deletions hit what the criteria read half the time (most of a
            # record is background no criterion reads, where a wrong merge would go unseen)
            screening = [k_ for k_ in keys if _SCREENING.match(k_[1][len(pid):])]
            if screening and rng.random() < 0.5:
                keys = screening
            self.counts[kind] += 1
            stamp = f"{day.isoformat()}T02:00:00Z"
            if kind == "lab":
                labs = [k_ for k_ in keys if k_[0] == "Observation" and "valueQuantity" in self._current(k_)] or keys
                src = orjson.loads(orjson.dumps(self._current(rng.choice(labs))))
                src["id"] = f"{pid}-n{k}"
                src["meta"] = {"versionId": "1", "lastUpdated": stamp}
                for f in ("effectiveDateTime", "issued"):
                    if f in src:
                        src[f] = f"{day.isoformat()}T07:30:00+08:00"
                if isinstance(src.get("valueQuantity"), dict) and isinstance(src["valueQuantity"].get("value"), int | float):
                    src["valueQuantity"]["value"] = round(src["valueQuantity"]["value"] * rng.uniform(0.5, 1.5), 2)
                self._emit(src, out)
            elif kind == "diagnosis":
                template = rng.choice(self.conditions)
                while template not in self.res:  # deleted on an earlier night: no longer a template
                    self.conditions.remove(template)
                    template = rng.choice(self.conditions)
                src = orjson.loads(orjson.dumps(self._current(template)))
                src["id"] = f"{pid}-d{k}"
                src["subject"] = {"reference": f"Patient/{pid}"}
                src["recordedDate"] = day.isoformat()
                src["meta"] = {"versionId": "1", "lastUpdated": stamp}
                self._emit(src, out)
            elif kind == "correction":
                new = self._bump(self._current(rng.choice(keys)), day)
                if isinstance(new.get("valueQuantity"), dict) and isinstance(new["valueQuantity"].get("value"), int | float):
                    new["valueQuantity"]["value"] = round(new["valueQuantity"]["value"] * rng.uniform(0.2, 3.0), 2)
                elif "status" in new:
                    new["status"] = "entered-in-error"
                self._emit(new, out)
            elif kind == "stale":
                key = rng.choice(keys)
                cur = self._current(key)
                old = orjson.loads(orjson.dumps(cur))
                if self._version(cur) < 2:  # make a newer version first (tonight), then resend the old one after it
                    cur = self._bump(cur, day)
                    if isinstance(cur.get("status"), str):
                        cur["status"] = "entered-in-error"
                    self._emit(cur, out)
                    old.setdefault("meta", {})["versionId"] = "1"
                else:
                    old["meta"]["versionId"] = str(self._version(cur) - 1)
                out.append(orjson.dumps(old))  # never applied: the model keeps the newer version
            elif kind == "delete":
                key = rng.choice(keys)
                del self.res[key]
                self.by_patient[self.owner.pop(key)].discard(key)
                out.append(orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
                    {"request": {"method": "DELETE", "url": f"{key[0]}/{key[1]}"}}]}))
            else:
                new_pid = f"{pid}x{k}"
                for key in sorted(self.by_patient[pid]):
                    text = orjson.dumps(self._current(key)).replace(f'{pid}"'.encode(), f'{new_pid}"'.encode()) \
                        .replace(f'{pid}-'.encode(), f'{new_pid}-'.encode())
                    self._emit(orjson.loads(text), out)
        return out

    def _emit(self, res: dict, out: list[bytes]) -> None:
        self._put(res)
        out.append(orjson.dumps(res))

    def write_current(self, path: Path) -> int:
        n = 0
        with open(path, "wb") as fh:
            for line in self.res.values():
                fh.write(line + b"\n")
                n += 1
        return n


def write_lines(path: Path, lines: list[bytes]) -> None:
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")


__all__ = ["KINDS", "Month", "write_lines"]
