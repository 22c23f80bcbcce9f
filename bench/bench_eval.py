"""Evaluation core speed on the tiny VLM.
Case `greedy`: batched `evaluate_dataset` vs a per-sample `generate` loop (same prompts, same greedy settings, same answers),
and the cost of re-running a finished evaluation from its prediction cache. Writes bench/results/eval.csv.
Case `num_samples`: n sampled completions per prompt, batched by `evaluate_dataset` (`eval.num_samples`, each completion
from its own seed) vs a loop of one `generate` call per prompt and completion with the same seeds; the completions must be
identical. Writes bench/results/eval_num_samples.csv.
Usage: python bench/bench_eval.py [--cases greedy num_samples] [--n 128] [--batch-sizes 8 16 32] [--max-new-tokens 16]
       [--threads 1] [--reps 2] [--ns-prompts 16] [--num-samples 8] [--ns-batch-size 64]"""
import argparse, json, sys, tempfile, time
from pathlib import Path
import torch
from vlm_nb.config import load_config
from vlm_nb.records import derive_seed, read_csv, read_jsonl, write_csv
from vlm_nb.data.synth import generate_suite
from vlm_nb.data.schema import load_image, resolve_image
from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
from vlm_nb.models.backbone import load_backbone
from vlm_nb.prompt import SFTCollator
from vlm_nb.eval.matrix import Method, as_samples, evaluate_dataset, generation_config, eval_settings, sampling_kwargs

HERE = Path(__file__).resolve().parent

def exact_match(sample, prediction): return float(prediction.strip().lower() in [a.strip().lower() for a in sample.answers])

def per_sample_loop(model, proc, samples, image_root, max_new_tokens):
    "The plain loop: one sample at a time, rendered with the trainer's chat template, greedy `generate`"
    col = SFTCollator(proc)
    gc = generation_config(model, eval_settings(max_new_tokens=max_new_tokens), col.pad_id)
    preds = []
    for s in samples:
        imgs = [load_image(resolve_image(image_root, p)) for p in s.image_paths]
        b = col.prompt_batch([col.example(s, imgs, train=False)])
        with torch.inference_mode(): out = model.generate(**b, generation_config=gc)
        preds.append(col.tok.decode(out[0, b['input_ids'].shape[1]:], skip_special_tokens=True).strip())
    return preds

def per_completion_loop(model, proc, samples, keys, image_root, st, seed):
    "The plain loop for n samples: one `generate` call per prompt and completion, seeded as `evaluate_dataset` seeds it"
    col = SFTCollator(proc)
    gc = generation_config(model, st, col.pad_id)
    out = {}
    for s in samples:
        imgs = [load_image(resolve_image(image_root, p)) for p in s.image_paths]
        b = col.prompt_batch([col.example(s, imgs, train=False)])
        comps = []
        for j in range(st.num_samples):
            with torch.inference_mode():
                ids = model.generate(**b, generation_config=gc, **sampling_kwargs(st, [derive_seed(seed, keys[s.id], j)]))
            comps.append(col.tok.decode(ids[0, b['input_ids'].shape[1]:], skip_special_tokens=True).strip())
        out[s.id] = comps
    return out

def bench_num_samples(a, model, proc, samples, cfg, image_root, d):
    "n-sample batched generation (`eval.num_samples`) vs a per-prompt, per-completion loop giving the same completions"
    samples = samples[:a.ns_prompts]
    ns = dict(do_sample=True, temperature=1.0, num_samples=a.num_samples, pass_k=[1, a.num_samples], max_new_tokens=a.max_new_tokens)
    st = eval_settings(cfg, **ns)
    method = Method(model, proc, 'base')
    evaluate_dataset(method, samples[:1], d/'ns_warm', cfg, metric_fn=exact_match, batch_size=a.ns_batch_size, **ns)  # warm-up
    best, folder = None, None
    for r in range(a.reps):
        out = d/'ns'/f'run{r}'
        t = time.perf_counter()
        s = evaluate_dataset(method, samples, out, cfg, metric_fn=exact_match, batch_size=a.ns_batch_size, **ns)
        secs = time.perf_counter() - t
        if best is None or secs < best: best, folder = secs, out
    recs = [r for _, r in read_jsonl(folder/'predictions.jsonl')]
    keys, batched = {r['id']: r['key'] for r in recs}, {r['id']: r['completions'] for r in recs}
    lbest, loop = None, None
    for _ in range(a.reps):
        t = time.perf_counter(); loop = per_completion_loop(model, proc, samples, keys, image_root, st, cfg.run.seed)
        secs = time.perf_counter() - t
        lbest = secs if lbest is None else min(lbest, secs)
    same = loop == batched
    n = len(samples) * a.num_samples
    distinct = len({c for cs in batched.values() for c in cs})
    rows = [dict(mode='per_completion_generate_loop', prompts=len(samples), num_samples=a.num_samples, batch_size=1, seconds=round(lbest, 3),
                 completions_per_s=round(n / lbest, 2), speedup_vs_loop=1.0, same_completions=same, distinct_completions=distinct),
            dict(mode='evaluate_dataset_num_samples', prompts=len(samples), num_samples=a.num_samples, batch_size=a.ns_batch_size,
                 seconds=round(best, 3), completions_per_s=round(n / best, 2), speedup_vs_loop=round(lbest / best, 2),
                 same_completions=same, distinct_completions=distinct, pass_at_n=s.get(f'pass@{a.num_samples}'))]
    for r in rows: print(r, flush=True)
    assert same, f"batched and looped completions differ: {[(k, batched[k], loop[k]) for k in batched if batched[k] != loop[k]][:2]}"
    return rows

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=128, help='samples evaluated')
    ap.add_argument('--batch-sizes', nargs='*', type=int, default=[8, 16, 32])
    ap.add_argument('--max-new-tokens', type=int, default=16)
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    ap.add_argument('--reps', type=int, default=2, help='timed repetitions (the best is kept)')
    ap.add_argument('--out', default=str(HERE/'results'/'eval.csv'))
    ap.add_argument('--cases', nargs='*', default=['greedy', 'num_samples'], choices=['greedy', 'num_samples'])
    ap.add_argument('--ns-prompts', type=int, default=16, help='num_samples case: prompts')
    ap.add_argument('--num-samples', type=int, default=8, help='num_samples case: completions per prompt')
    ap.add_argument('--ns-batch-size', type=int, default=64, help='num_samples case: sequences per generate call')
    ap.add_argument('--ns-out', default=str(HERE/'results'/'eval_num_samples.csv'))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        files = [generate_suite(s, d/'data', a.n // 4 + 1, seed=0, split='val', workers=1, show_progress=False) for s in ('charts', 'screens')]
        samples = [s for pair in zip(*[as_samples(f)[0] for f in files]) for s in pair][:a.n]
        vdir = build_tiny_vlm(d/'vlm', list(sample_texts(*files)) * 3, seed=0, vocab_size=1024)  # the default sizes: 64²–448² images
        model, proc = load_backbone(name_or_path=str(vdir)); model.eval()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():  # scaled-up random weights: full-length, varied answers
            for p in model.parameters():
                if p.dim() >= 2: p.normal_(0, 1.5 / p.shape[-1] ** 0.5, generator=g)
        cfg = load_config('tiny', overrides=[f'data.image_root={d}/data', 'run.progress=false'])
        if 'num_samples' in a.cases:
            ns_rows = bench_num_samples(a, model, proc, samples, cfg, d/'data', d)
            write_csv(a.ns_out, ns_rows)
            print(f'wrote {a.ns_out}')
        if 'greedy' not in a.cases: return 0
        method = Method(model, proc, 'base')
        per_sample_loop(model, proc, samples[:2], d/'data', a.max_new_tokens)  # warm-up
        best, ref = None, None
        for _ in range(a.reps):
            t = time.perf_counter(); ref = per_sample_loop(model, proc, samples, d/'data', a.max_new_tokens); s = time.perf_counter() - t
            best = s if best is None else min(best, s)
        loop_sps = a.n / best
        rows.append(dict(mode='per_sample_generate_loop', n=a.n, batch_size=1, seconds=round(best, 3), samples_per_s=round(loop_sps, 2),
                         speedup_vs_loop=1.0, same_predictions=True, computed=a.n))
        print(rows[-1], flush=True)
        for bs in a.batch_sizes:
            best, first = None, None
            for r in range(a.reps):
                out = d/'runs'/f'bs{bs}_{r}'
                t = time.perf_counter()
                s = evaluate_dataset(method, samples, out, cfg, metric_fn=exact_match, batch_size=bs, max_new_tokens=a.max_new_tokens)
                secs = time.perf_counter() - t
                if best is None or secs < best: best, first = secs, out
            preds = [r['prediction'] for r in read_csv(first/'results.csv')]
            rows.append(dict(mode='evaluate_dataset', n=a.n, batch_size=bs, seconds=round(best, 3), samples_per_s=round(a.n / best, 2),
                             speedup_vs_loop=round(best and (a.n / best) / loop_sps, 2), same_predictions=preds == ref, computed=s['computed']))
            print(rows[-1], flush=True)
            t = time.perf_counter()
            c = evaluate_dataset(method, samples, first, cfg, metric_fn=exact_match, batch_size=bs, max_new_tokens=a.max_new_tokens)
            secs = time.perf_counter() - t
            rows.append(dict(mode='evaluate_dataset_cached_rerun', n=a.n, batch_size=bs, seconds=round(secs, 3), samples_per_s=round(a.n / secs, 2),
                             speedup_vs_loop=round((a.n / secs) / loop_sps, 2), same_predictions=True, computed=c['computed'],
                             rerun_cost_vs_first=round(secs / best, 4)))
            print(rows[-1], flush=True)
    write_csv(a.out, rows, columns=['mode', 'n', 'batch_size', 'seconds', 'samples_per_s', 'speedup_vs_loop', 'same_predictions',
                                    'computed', 'rerun_cost_vs_first'])
    print(f'wrote {a.out}')
    ok = all(r['same_predictions'] for r in rows)
    return 0 if ok else 1

if __name__ == '__main__': sys.exit(main())
