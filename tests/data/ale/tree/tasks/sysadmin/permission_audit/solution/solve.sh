#!/bin/sh
set -e
token=$(cat input/run_token.txt)
printf '#!/bin/sh\necho %s\n' "$token" > output/deploy.sh
chmod 755 output/deploy.sh
printf 'not-a-real-key\n' > output/private.key
chmod 600 output/private.key
