"""n completions per prompt (`eval.num_samples`) on the tiny VLM: each completion is drawn from its own seed, so a rerun,
another batch size and a loop over single prompts give the same completions; the summary's mean accuracy, any-of-n and
pass@k follow from the per-sample correct counts; `eval.group_by` rows add up to the whole."""
import json
from pathlib import Path
import pytest
from conftest import tiny_vlm_varied
from vlm_nb.config import ConfigError, load_config
from vlm_nb.records import read_jsonl
from vlm_nb.data.schema import Sample
from vlm_nb.eval.metrics import mean_pass_at_k
from vlm_nb.eval.matrix import Method, cache_key, decoding, eval_settings, evaluate_dataset

N, K = 6, 4  # prompts, completions per prompt
SAMPLING = dict(do_sample=True, temperature=1.5, top_k=50, top_p=0.95, min_p=0.01, num_samples=K, pass_k=[1, 2, 4], max_new_tokens=5)

def parity(sample, prediction):
    "A toy metric with varied outcomes on a random model: an answer of even length is correct"
    return float(len(prediction) % 2 == 0)

class Counting:
    "generate_fn counting calls and rows"
    def __init__(self): self.calls = self.rows = 0
    def __call__(self, model, batch, **kw):
        self.calls += 1; self.rows += batch['input_ids'].shape[0]
        return model.generate(**batch, **kw)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from vlm_nb.eval.matrix import as_samples
    d = tmp_path_factory.mktemp('nsamples')
    files, model, proc = tiny_vlm_varied(d, 2, 64*64)
    model.eval()
    pool = as_samples(files)[0]
    picked = [s for ds in ('charts', 'screens') for s in [x for x in pool if x.dataset == ds][:N // 2]]
    samples = [Sample(**{**s.to_dict(), 'meta': {**s.meta, 'part': 'I' if i % 3 else 'II'}}) for i, s in enumerate(picked)]
    cfg = load_config('tiny', overrides=[f'data.image_root={d}/data', 'run.progress=false'])
    return d, model, proc, samples, cfg

def _completions(folder:Path) -> dict:
    return {r['key']: r['completions'] for _, r in read_jsonl(folder/'predictions.jsonl')}

@pytest.fixture(scope='module')
def runs(tiny):
    "The same n-sample evaluation three times: batch of 8 sequences, the same again in a fresh folder, batch of 4"
    d, model, proc, samples, cfg = tiny
    out, counters = {}, {}
    for name, bs in (('bs8', 8), ('bs8_again', 8), ('bs4', 4)):
        counters[name] = c = Counting()
        s = evaluate_dataset(Method(model, proc, 'base', generate_fn=c), samples, d/name, cfg, metric_fn=parity, batch_size=bs,
                             group_by=['meta.part'], **SAMPLING)
        out[name] = (s, _completions(d/name))
    return out, counters

def test_num_samples_same_seed_same_completions_across_runs_and_batch_sizes(tiny, runs):
    out, counters = runs
    (s8, c8), (_, again), (_, c4) = out['bs8'], out['bs8_again'], out['bs4']
    assert len(c8) == N and all(len(v) == K for v in c8.values())
    assert c8 == again  # a rerun
    assert c8 == c4  # another batch size
    assert (counters['bs8'].calls, counters['bs8'].rows) == (N // 2, N * K)  # 2 prompts × K rows per generate call
    assert (counters['bs4'].calls, counters['bs4'].rows) == (N, N * K)  # 1 prompt × K rows
    assert len({c for v in c8.values() for c in v}) > N  # the completions of a prompt differ
    assert s8['computed'] == N and s8['decoding']['num_samples'] == K
    # a different seed draws other completions (the seed is part of the cache key too)
    d, model, proc, samples, cfg = tiny
    cfg2 = load_config('tiny', overrides=[f'data.image_root={d}/data', 'run.progress=false', 'run.seed=1'])
    evaluate_dataset(Method(model, proc, 'base'), samples, d/'seed1', cfg2, metric_fn=parity, batch_size=8, **SAMPLING)
    assert sorted(map(tuple, _completions(d/'seed1').values())) != sorted(map(tuple, c8.values()))

def test_num_samples_pass_at_k_is_the_unbiased_estimator(runs):
    s, comps = runs[0]['bs8']
    counts = [(K, int(sum(parity(None, p) for p in cs))) for cs in comps.values()]  # (n, correct) per prompt
    assert 0 < sum(c for _, c in counts) < N * K  # some right, some wrong: the check below can fail
    for k in (1, 2, 4): assert s[f'pass@{k}'] == pytest.approx(mean_pass_at_k(counts, k), abs=1e-6)
    assert s['score'] == pytest.approx(sum(c for _, c in counts) / (N * K), abs=1e-6)  # mean accuracy over all completions
    assert s['pass@1'] == pytest.approx(s['score'], abs=1e-6)
    assert s['metric_keys'][:2] == ['score', 'any_of_n'] and s['pass_k'] == [1, 2, 4]

def test_num_samples_any_of_n_at_least_mean_accuracy(runs):
    s, comps = runs[0]['bs8']
    any_n = sum(any(parity(None, p) for p in cs) for cs in comps.values()) / N
    assert s['any_of_n'] == pytest.approx(any_n, abs=1e-6)
    assert s['any_of_n'] >= s['pass@2'] >= s['score']
    for t in s['table']: assert t['any_of_n'] >= t['score']

def test_num_samples_group_by_rows_add_up(tiny, runs):
    s = runs[0]['bs8'][0]
    groups = s['by_group']['meta.part']
    assert sorted(groups) == ['I', 'II']
    assert sum(g['n'] for g in groups.values()) == s['n'] == N
    for k in ('score', 'any_of_n', 'pass@2'):
        assert sum(g['n'] * g[k] for g in groups.values()) / N == pytest.approx(s[k], abs=1e-5)
    rows = [t for t in s['table'] if t.get('group_by') == 'meta.part']
    assert [(t['group_value'], t['n']) for t in rows] == [(v, groups[v]['n']) for v in ('I', 'II')]
    assert s['by_level']['0.0']['by_group'] == s['by_group']
    d, model, proc, samples, cfg = tiny
    with pytest.raises(ConfigError, match=r"eval.group_by: no sample has 'meta.prt' \(did you mean 'meta.part'\?\)"):
        evaluate_dataset(Method(model, proc, 'base'), samples, d/'bs8', cfg, metric_fn=parity, group_by=['meta.prt'], **SAMPLING)

def test_num_samples_settings_are_checked_and_greedy_keys_unchanged(tiny):
    with pytest.raises(ConfigError, match='eval.num_samples=4 needs eval.do_sample=true'): eval_settings(num_samples=4)
    with pytest.raises(ConfigError, match=r'eval.pass_k: \[8\] not in \[1, eval.num_samples=4\]'):
        eval_settings(num_samples=4, do_sample=True, pass_k=[8])
    # greedy decoding, one completion: the cache key of earlier runs (no sampler, no system prompt in it)
    d, model, proc, samples, cfg = tiny
    s = samples[0]
    dec = decoding(eval_settings(max_new_tokens=5))
    assert dec == dict(max_new_tokens=5, num_beams=1, do_sample=False, use_cache=True)
    import hashlib
    old = dict(id=s.id, prompt='q', images=s.image_paths, level=0.0, corruption=None, decoding=dec, model='m', method='x')
    assert cache_key(s, 'q', 0.0, {}, dec, 'm', 'x') == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:32]
