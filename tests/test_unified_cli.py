"""`vlm_nb data rebuild` (r3 one-shot step) as a subprocess: a tiny unified input gives the unified files with OCR,
train/val files, OCR caches and indices; a second run reuses everything; two torchrun shards give the same files."""
import json, os
from pathlib import Path
import pytest
from conftest import run_cmd, BIN, ROOT

ENV = {'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "Synthetic screens and charts (train 3, val 2 items each) and a small CLIP for the image index"
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.retrieval import train_tiny_clip, tiny_clip_config, TINY_CLIP_WEIGHTS
    d = tmp_path_factory.mktemp('rebuild')
    files = [generate_suite(s, d/'data', n, seed=0, split=sp, workers=1, show_progress=False, jsonl_path=d/'processed'/f'{s}_{sp}.jsonl')
             for s in ('screens', 'charts') for sp, n in (('train', 3), ('val', 2))]
    arch = tiny_clip_config(image_size=32, layers=1, text_layers=1, width=64, text_width=64, embed_dim=64, context_length=16)
    ck = train_tiny_clip(files[::2], d/'data', d/'clip', steps=5, batch_size=8, arch=arch, show_progress=False, threads=1)
    return dict(dir=d, files=files, clip=ck/TINY_CLIP_WEIGHTS)

def rebuild_args(t, tag):
    d = t['dir']
    return ['--unified', *t['files'], '--image_root', d/'data', '--out_dir', d/tag/'unified', '--index_dir', d/tag/'indices',
            '--ocr_root', d/tag/'ocr', '--no_progress', 'ocr.num_threads=1', '--set', f"retrieval.image_pretrained={t['clip']}",
            'retrieval.batch_size=16']

def outputs(t, tag):
    d = t['dir']/tag
    return sorted(p.relative_to(d).as_posix() for p in d.rglob('*') if p.is_file())

EXPECTED = ['indices/image.faiss', 'indices/image.json', 'indices/text.faiss', 'indices/text.json', 'ocr/charts_ocr.jsonl',
            'ocr/screens_ocr.jsonl', 'unified/charts_unified_train.jsonl', 'unified/charts_unified_val.jsonl',
            'unified/rebuild_manifest.json', 'unified/screens_unified_train.jsonl', 'unified/screens_unified_val.jsonl',
            'unified/train.jsonl', 'unified/val.jsonl']

def test_rebuild_then_rerun_reuses_everything(tiny):
    r = run_cmd([BIN/'vlm_nb', 'data', 'rebuild', *rebuild_args(tiny, 'one')], env=ENV, check=True)
    n_img = len({json.loads(l)['image'] for f in tiny['files'] for l in Path(f).read_text().splitlines()})
    n_tr = sum(len(Path(f).read_text().splitlines()) for f in tiny['files'] if '_train' in Path(f).name)
    assert f'OCR {n_img} new of {n_img} images' in r.stdout, r.stdout
    assert outputs(tiny, 'one') == EXPECTED
    d = tiny['dir']/'one'
    train = [json.loads(l) for l in (d/'unified/train.jsonl').read_text().splitlines()]
    assert len(train) == n_tr and all(isinstance(s['ocr'], str) for s in train) and sum(bool(s['ocr']) for s in train) >= 0.9 * n_tr
    meta = json.loads((d/'indices/text.json').read_text())
    assert meta['ids'] == [s['id'] for s in train] and meta['text_field'] == 'ocr'
    stamps = {p: p.stat().st_mtime_ns for p in d.rglob('*') if p.is_file()}
    r2 = run_cmd([BIN/'vlm_nb', 'data', 'rebuild', *rebuild_args(tiny, 'one')], env=ENV, check=True)
    assert f'OCR 0 new of {n_img} images' in r2.stdout and '0 file(s) written' in r2.stdout, r2.stdout
    assert {p: p.stat().st_mtime_ns for p in d.rglob('*') if p.is_file()} == stamps
    r3 = run_cmd([BIN/'python', '-m', 'vlm_nb.unified', *rebuild_args(tiny, 'one')], env=ENV, check=True)  # same program
    assert 'OCR 0 new of' in r3.stdout, r3.stdout

def test_missing_input_is_one_line(tiny):
    r = run_cmd([BIN/'python', '-m', 'vlm_nb.unified', *rebuild_args(tiny, 'bad'), '--unified', tiny['dir']/'nope.jsonl'], env=ENV)
    assert r.returncode == 1 and 'unified file not found:' in r.stderr and 'nope.jsonl' in r.stderr, r.stderr
    r = run_cmd([BIN/'vlm_nb', 'data', 'rebuild', '--raw_root', ROOT/'data/fixtures', '--datasets', 'chartqa', '--out_dir', tiny['dir']/'bad',
                 '--ocr_root', tiny['dir']/'bad'], env=ENV)
    assert r.returncode == 1 and "dataset 'chartqa'" in r.stderr and 'no train split found' in r.stderr, r.stderr
    assert not (tiny['dir']/'bad').exists()

def test_empty_or_missing_unified_input_is_named_first(tmp_path):
    "An empty --unified file is refused before anything is written; with no --image_root, a missing one is named as missing"
    (tmp_path/'empty.jsonl').write_text('')
    out = tmp_path/'out'
    common = ['--out_dir', out/'unified', '--index_dir', out/'indices', '--ocr_root', out/'ocr', '--no_progress']
    r = run_cmd([BIN/'vlm_nb', 'data', 'rebuild', '--unified', tmp_path/'empty.jsonl', '--image_root', tmp_path, *common], env=ENV)
    assert r.returncode == 1 and f"unified file {tmp_path/'empty.jsonl'} is empty: no samples" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists(), (r.stderr, list(out.rglob('*')))
    # run where the profile's image_root ('data') does not exist: the missing input is what is reported
    r = run_cmd([BIN/'vlm_nb', 'data', 'rebuild', '--unified', tmp_path/'nope.jsonl', *common], cwd=tmp_path, env=ENV)
    assert r.returncode == 1 and f"unified file not found: {tmp_path/'nope.jsonl'}" in r.stderr, r.stderr
    assert 'is not a folder' not in r.stderr and not out.exists(), r.stderr

def test_torchrun_two_shards_equal_one_process(tiny):
    one = tiny['dir']/'one'
    if not (one/'unified/train.jsonl').exists(): run_cmd([BIN/'vlm_nb', 'data', 'rebuild', *rebuild_args(tiny, 'one')], env=ENV, check=True)
    cmd = [BIN/'torchrun', '--standalone', '--nproc_per_node', '2', '-m', 'vlm_nb.unified', *rebuild_args(tiny, 'two'), '--num_shards', '2']
    r = run_cmd(cmd, env=ENV, check=True)
    two = tiny['dir']/'two'
    assert [p for p in outputs(tiny, 'two') if not p.startswith('indices/shards/')] == EXPECTED, outputs(tiny, 'two')
    for f in ('unified/train.jsonl', 'unified/val.jsonl', 'unified/screens_unified_train.jsonl'):
        assert (two/f).read_bytes() == (one/f).read_bytes(), f
    strip = lambda p: [{k: v for k, v in json.loads(l).items() if k != 'seconds'} for l in p.read_text().splitlines()]
    assert strip(two/'ocr/screens_ocr.jsonl') == strip(one/'ocr/screens_ocr.jsonl')
    for k in ('image', 'text'):
        m1, m2 = (json.loads((x/f'indices/{k}.json').read_text()) for x in (one, two))
        assert m2['ids'] == m1['ids'] and m2['num_shards'] == 2
    r = run_cmd(cmd, env=ENV, check=True)
    assert 'OCR 0 new of' in r.stdout and '0 file(s) written' in r.stdout, r.stdout
