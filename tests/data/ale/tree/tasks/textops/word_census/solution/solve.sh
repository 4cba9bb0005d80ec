#!/bin/sh
# Oracle: run from the variant folder (the workspace).
set -e
python3 - <<'PY'
import json, re
from collections import Counter
text = open("input/passage.txt").read()
words = re.findall(r"[a-z']+", text.lower())
out = {"words": len(words), "lines": len(text.splitlines()), "top": Counter(words).most_common(1)[0][0]}
json.dump(out, open("output/census.json", "w"))
PY
