"""A run folder holds what the README promises or links it by a path that resolves: an r3 stage notebook's
`summary.json` named `run_metadata.json` and `metrics.csv` that lived only in `checkpoints/<stage>/` (issue 18, item 7)."""
import json
from pathlib import Path
from vlm_nb.studies.r3.study import STAGE_RECORDS, record_stage, stage_dir

PATH_KEYS = {'results', 'run_metadata', 'metrics', 'config', 'stage_dir', 'checkpoint'}

def unresolved(summary_file:Path) -> list[str]:
    "Paths a summary.json names (its path keys, and any value ending in a file suffix) that do not resolve from its folder"
    s = json.loads(summary_file.read_text())
    paths = [v for k, v in s.items() if isinstance(v, str) and (k in PATH_KEYS or v.endswith(('.json', '.csv', '.yaml')))]
    return [p for p in paths if not (summary_file.parent/p).exists()]

def test_stage_run_folder_holds_or_links_its_records(tmp_path):
    root = tmp_path/'runs/r3/tiny-20260101-000000'
    out = stage_dir(root, 'stage1_clean'); (out/'step_4').mkdir(parents=True)
    for name in STAGE_RECORDS.values(): (out/name).write_text('x\n')
    trainer_summary = dict(status='ok', checkpoint=str(out/'step_4'), metrics='metrics.csv', run_metadata='run_metadata.json', results='results.csv')
    f = record_stage(root/'01_stage1_clean', root, 'stage1_clean', trainer_summary, [dict(step=1, loss=1.0)])
    assert f == root/'01_stage1_clean'/'summary.json'
    assert unresolved(f) == []
    for name in ('config.yaml', 'run_metadata.json', 'metrics.csv', 'results.csv'): assert (f.parent/name).exists(), name
    s = json.loads(f.read_text())
    assert (f.parent/s['checkpoint']).resolve() == (out/'step_4').resolve()

def test_checker_sees_the_old_defect(tmp_path):
    (tmp_path/'summary.json').write_text(json.dumps(dict(metrics='metrics.csv', run_metadata='run_metadata.json')))
    assert unresolved(tmp_path/'summary.json') == ['metrics.csv', 'run_metadata.json']
