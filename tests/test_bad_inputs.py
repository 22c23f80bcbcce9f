"Each bad input gives one clear line naming file, line and field (issue 2 acceptance)"
import json, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from vlm_nb.config import load_config, ConfigError
from vlm_nb.data.schema import read_samples, SkipReport
from vlm_nb.records import RecordError

GOOD = dict(id='s/val/0', dataset='s', split='val', image='ok.png', question='q?', answer='a', answer_type='span')

@pytest.fixture
def root(tmp_path):
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path/'ok.png')
    (tmp_path/'cut.png').write_bytes((tmp_path/'ok.png').read_bytes()[:60])
    return tmp_path

def _write(root, *recs):
    f = root/'val.jsonl'
    f.write_text(''.join((r if isinstance(r, str) else json.dumps(r)) + '\n' for r in recs))
    return f

def _err(root, *recs, check_images=True):
    with pytest.raises(RecordError) as e: read_samples(_write(root, *recs), root, check_images=check_images)
    msg = str(e.value)
    assert '\n' not in msg
    return msg

@pytest.mark.parametrize('bad,expect', [
    ('{"id": "x", ', 'val.jsonl:2: malformed JSON'),
    ({k: v for k, v in GOOD.items() if k != 'answer'}, "val.jsonl:2: missing field 'answer'"),
    ({**GOOD, 'question': 7}, "val.jsonl:2: field 'question': expected str"),
    ({**GOOD, 'image': 'missing.png'}, 'val.jsonl:2: image not found'),
    ({**GOOD, 'image': 'cut.png'}, 'val.jsonl:2: truncated or corrupt image'),
    ({**GOOD, 'image': '../ok.png'}, "val.jsonl:2: field 'image': path '../ok.png' escapes image_root"),
])
def test_bad_record_names_file_line_field(root, bad, expect):
    good0 = {**GOOD, 'id': 's/val/first'}
    bad = bad if isinstance(bad, str) else {**bad, 'id': bad.get('id', GOOD['id'])}
    assert expect in _err(root, good0, bad)

def test_skip_counts_and_reports(root):
    f = _write(root, GOOD, '{oops', {**GOOD, 'id': 's/val/2', 'image': 'cut.png'}, {**GOOD, 'id': 's/val/3'})
    rep = SkipReport()
    kept = read_samples(f, root, on_bad_sample='skip', check_images=True, report=rep)
    assert [s.id for s in kept] == ['s/val/0', 's/val/3']
    assert (rep.read, rep.kept, rep.n_skipped) == (4, 2, 2)
    assert 'val.jsonl:2' in rep.skipped[0] and 'val.jsonl:3' in rep.skipped[1]

def test_unknown_config_key_one_line(tmp_path):
    with pytest.raises(ConfigError) as e: load_config('tiny', overrides=['train.learning_rat=1'])
    assert str(e.value) == "override 'train.learning_rat=1': unknown key 'train.learning_rat'" or 'did you mean' in str(e.value)
    y = tmp_path/'x.yaml'; y.write_text('eval:\n  max_eval_sample: 3\n')
    with pytest.raises(ConfigError) as e: load_config('tiny', y)
    assert str(e.value) == f"{y}: unknown key 'eval.max_eval_sample' (did you mean 'max_eval_samples'?)"
