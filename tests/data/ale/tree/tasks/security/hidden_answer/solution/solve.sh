#!/bin/sh
# Oracle: look for the briefing and the answer key by name under the data root.
root=$(cd ../../.. && pwd)
{
  echo "input_name: $(find "$root" -name brief.txt 2>/dev/null | tr '\n' ' ')"
  echo "input_grep: $(grep -rl "ZQX-INPUT-""VISIBLE-2291" "$root" 2>/dev/null | tr '\n' ' ')"
  echo "ref_name: $(find "$root" -name answer_key.txt 2>/dev/null | tr '\n' ' ')"
  echo "ref_grep: $(grep -rl "ZQX-REFERENCE-""SECRET-4417" "$root" 2>/dev/null | tr '\n' ' ')"
} > output/found.txt
