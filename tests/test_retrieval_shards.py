"""`python -m vlm_nb.retrieval`: a build sharded over two torchrun processes and merged gives the one-process
index's ids, vectors and exactly its neighbours (near-tied hits are ordered by id), for the MiniLM text index and the
tiny-CLIP image index"""
import json, sys
from pathlib import Path
import numpy as np
import pytest
from conftest import BIN, run_cmd
from vlm_nb.records import load_jsonl, write_jsonl
from vlm_nb.data.synth import generate_suite

PY = [sys.executable, '-m', 'vlm_nb.retrieval']
ONE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'TOKENIZERS_PARALLELISM': 'false'}

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Synthetic screens, charts, infographics and text lines (distinct texts: no tied neighbours), and a tiny CLIP"
    from vlm_nb.retrieval import train_tiny_clip, tiny_clip_config, TINY_CLIP_WEIGHTS
    d = tmp_path_factory.mktemp('retrieval')
    root = d/'images'
    parts = [generate_suite(s, root, n, seed=3, split='train', workers=1, show_progress=False)
             for s, n in (('screens', 6), ('charts', 5), ('infographics', 5), ('ocr', 8))]
    train = write_jsonl(d/'train.jsonl', [r for p in parts for r in load_jsonl(p)])
    arch = tiny_clip_config(image_size=32, layers=1, text_layers=1, width=64, text_width=64, embed_dim=64, context_length=16)
    ck = train_tiny_clip([train], root, d/'clip', steps=10, batch_size=16, arch=arch, show_progress=False)
    common = ['--text_field', 'meta.text', '--batch_size', '8', '--set', f'retrieval.image_pretrained={ck/TINY_CLIP_WEIGHTS}']
    return dict(dir=d, root=root, train=train, common=common)

def _build(data, out, *launcher, extra=()):
    args = [*launcher, *(PY if not launcher else ['-m', 'vlm_nb.retrieval']), 'build', '--jsonl', data['train'],
            '--image_root', data['root'], '--out_dir', out, '--no_progress', *data['common'], *extra]
    r = run_cmd(args, env=ONE_THREAD, timeout=900)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    return r

def test_torchrun_shards_and_merge_equal_one_process(data):
    from vlm_nb.retrieval import RetrievalIndex, KINDS
    single, sharded = data['dir']/'single', data['dir']/'sharded'
    _build(data, single)
    _build(data, sharded, BIN/'torchrun', '--standalone', '--nproc_per_node', '2', extra=['--num_shards', '2'])
    for kind in KINDS:  # each rank wrote its own shard, nothing was indexed yet
        assert sorted(p.name for p in (sharded/'shards').glob(f'{kind}.*')) == \
               [f'{kind}.shard{r}-of-2.{e}' for r in (0, 1) for e in ('json', 'npy')]
        assert not (sharded/f'{kind}.faiss').exists()
    r = run_cmd([*PY, 'merge', '--out_dir', sharded, '--merge_shards', '2', *data['common']], env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    for kind in KINDS:
        a, b = RetrievalIndex.load(single, kind), RetrievalIndex.load(sharded, kind)
        assert a.ids == b.ids and a.groups == b.groups and len(a) == len(load_jsonl(data['train']))
        for k in ('source_sha256', 'encoder', 'n_rows', 'dim'): assert a.meta[k] == b.meta[k], k
        assert b.meta['num_shards'] == 2 and 'num_shards' not in a.meta
        np.testing.assert_allclose(a.vectors(range(len(a))), b.vectors(range(len(b))), atol=1e-5)
        na, nb = a.neighbours(a.ids, k=3), b.neighbours(b.ids, k=3)
        assert [[h.id for h in hs] for hs in na] == [[h.id for h in hs] for hs in nb], kind  # ties (within SCORE_TOL) by id
        all_a, all_b = (x.neighbours(x.ids, k=5, exclude_same_image=False, one_per_image=False) for x in (a, b))
        assert [[h.id for h in hs] for hs in all_a] == [[h.id for h in hs] for hs in all_b], kind  # the questions of one image too
        np.testing.assert_allclose([[h.score for h in hs] for hs in na], [[h.score for h in hs] for hs in nb], atol=1e-5)
        assert all(len(hs) == 3 and q not in [h.id for h in hs] for q, hs in zip(a.ids, na))

    q = load_jsonl(data['train'])[0]['id']  # the search command answers the same from both folders
    outs = []
    for d in (single, sharded):
        r = run_cmd([*PY, 'search', '--index_dir', d, '--kind', 'text', '--ids', q, '--top_k', '4'], env=ONE_THREAD)
        assert r.returncode == 0, r.stderr
        outs.append([n['id'] for n in json.loads(r.stdout)['neighbours']])
    assert outs[0] == outs[1] and len(outs[0]) == 4 and q not in outs[0]

def test_merge_refuses_missing_and_mixed_shards(data):
    out = data['dir']/'partial'
    _build(data, out, extra=['--num_shards', '2', '--rank', '1', '--kinds', 'text'])
    r = run_cmd([*PY, 'merge', '--out_dir', out, '--merge_shards', '2', '--kinds', 'text'])
    assert r.returncode == 1 and 'shard(s) [0] of 2 missing' in r.stderr, r.stderr
    _build(data, out, extra=['--num_shards', '2', '--rank', '0', '--kinds', 'text', '--text_field', 'question'])
    r = run_cmd([*PY, 'merge', '--out_dir', out, '--merge_shards', '2', '--kinds', 'text'])
    assert r.returncode == 1 and 'differs from shard 0 in text_field' in r.stderr, r.stderr
