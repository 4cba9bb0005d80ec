#!/bin/sh
# Oracle: a one-sentence summary of the article.
echo "Otters hold hands while they sleep so that they do not drift apart." > output/summary.txt
