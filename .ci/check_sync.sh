#!/usr/bin/env bash
# Fail when nbdev_clean, nbdev_export or the README build would change a file: notebooks must be committed
# clean and the exported library and README.md must match them (as nbdev's own CI checks).
set -euo pipefail
state() { git status --porcelain --untracked-files=all -- nbs vlm_nb README.md; git diff -- nbs vlm_nb README.md | sha1sum; }
before=$(state)
nbdev_clean >/dev/null
nbdev_export
jupyter nbconvert --log-level WARN --to markdown nbs/index.ipynb --output-dir . --output README
after=$(state)
if [ "$before" != "$after" ]; then
  echo "notebooks not clean, or library / README not in sync with the notebooks."
  echo "Run 'make export' and commit. Files changed by the check:"
  diff <(echo "$before") <(echo "$after") | sed -n 's/^> /  /p'
  exit 1
fi
echo "notebooks clean; library and README in sync"
