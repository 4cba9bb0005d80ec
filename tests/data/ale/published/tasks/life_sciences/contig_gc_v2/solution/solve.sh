#!/bin/sh
# Oracle: run from the variant folder ALE stages (life_sciences/contig_gc_v2/base).
set -e
python3 - <<'PY'
import json
seq = "".join(l.strip() for l in open("input/contig.fasta") if not l.startswith(">")).upper()
json.dump({"gc": round(sum(seq.count(b) for b in "GC") / len(seq), 4)}, open("output/answer.json", "w"))
PY
