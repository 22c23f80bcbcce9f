"""Retrieval: encoder throughput (texts/s, images/s), recall@1/@5 on a held-out synthetic split against chance, and
FAISS search speed against numpy brute force on the same vectors. Writes bench/results/retrieval.csv.

Recall tasks (held-out split 'val', items never seen in training):
- tiny CLIP image->text and text->image (an image and the words drawn on it / its question);
- tiny CLIP corrupted image -> clean image (blur at level 0.5: near-duplicate retrieval, what r3 asks of the image index);
- MiniLM corrupted text -> clean text (character edits at level 0.5: a noisy OCR read finding its clean neighbour);
- MiniLM question -> the text drawn on its image (many questions name no content: 'What is the title?').
Search: synthetic vectors (d=384 like MiniLM; structureless and clustered), exact FAISS IndexFlatIP and IVF
against numpy q @ X.T + argpartition.
FAISS (OpenMP) and numpy (BLAS) searches use all cores. Encoders use --threads torch threads (default 1).
Usage: python bench/bench_retrieval.py [--n_val 60] [--clip PATH] [--n_vectors 100000] [--n_queries 1000] [--threads 1]"""
import argparse, os, tempfile, time
from pathlib import Path
import numpy as np
from vlm_nb.records import write_csv
from vlm_nb.data.synth import generate_suite
from vlm_nb.data.schema import read_samples, load_image, resolve_image
from vlm_nb.data.corrupt import corrupt_image, corrupt_text
from vlm_nb.retrieval import (TINY_CLIP_DIR, TINY_CLIP_NAME, TINY_CLIP_WEIGHTS, ImageEncoder, TextEncoder, clip_pairs,
                              clip_recall, l2_normalize, make_index, recall_at_k, train_tiny_clip)

HERE = Path(__file__).resolve().parent
SUITES = ('screens', 'charts', 'infographics', 'vov', 'ocr')
COLS = ['bench', 'what', 'n', 'k', 'value', 'random', 'unit', 'seconds', 'note']

def timed(fn, repeat=1):
    "Result of `fn()` and its best wall time over `repeat` runs"
    best, out = float('inf'), None
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t)
    return out, best

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n_val', type=int, default=60, help='held-out items per suite')
    ap.add_argument('--clip', default=f'{TINY_CLIP_DIR}/{TINY_CLIP_WEIGHTS}', help='tiny CLIP checkpoint (trained here when missing)')
    ap.add_argument('--n_vectors', type=int, default=100_000)
    ap.add_argument('--n_queries', type=int, default=1000)
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads (1 is 3-4x faster than 2 on a shared 2-core machine)')
    ap.add_argument('--out', default=str(HERE/'results'/'retrieval.csv'))
    a = ap.parse_args(argv)
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    rows = []
    def add(**r):
        rows.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}); print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        val = [generate_suite(s, root, a.n_val, seed=0, split='val', show_progress=False) for s in SUITES]
        clip_path = Path(a.clip)
        if not clip_path.exists():  # the tiny default, trained as the experiment notebook trains it
            tr = [generate_suite(s, root, 300, seed=0, split='train', show_progress=False) for s in SUITES]
            clip_path = train_tiny_clip(tr, root, root/'clip', show_progress=False)/TINY_CLIP_WEIGHTS
        minilm, clip = TextEncoder(), ImageEncoder(TINY_CLIP_NAME, str(clip_path))
        untrained = ImageEncoder(TINY_CLIP_NAME, '')
        samples = [s for f in val for s in read_samples(f)]
        pairs = clip_pairs(*val)

        # --- encoder throughput (after one warm-up batch)
        texts = list(dict.fromkeys([t for _, t in pairs] + [s.question for s in samples]))
        minilm.encode(texts[:64])
        _, sec = timed(lambda: minilm.encode(texts, batch_size=64), 2)
        ntok = np.mean([len(x) for x in minilm.model.tokenizer(texts)['input_ids']])
        add(bench='encode', what='MiniLM-L6 (bundled) texts', n=len(texts), value=len(texts) / sec, unit='texts/s', seconds=sec, note=f'batch 64, {ntok:.0f} tokens/text on average, {torch.get_num_threads()} thread(s)')
        paths = [resolve_image(root, p) for p, _ in pairs]
        clip.encode_images(paths[:64])
        _, sec = timed(lambda: clip.encode_images(paths, batch_size=64), 2)
        add(bench='encode', what='tiny CLIP images', n=len(paths), value=len(paths) / sec, unit='images/s', seconds=sec, note=f'PNG decode + preprocess + ViT, batch 64, {torch.get_num_threads()} thread(s)')
        imgs = [load_image(p) for p in paths]
        _, sec = timed(lambda: clip.encode_images(imgs, batch_size=64), 2)
        add(bench='encode', what='tiny CLIP images (decoded)', n=len(imgs), value=len(imgs) / sec, unit='images/s', seconds=sec, note='preprocess + ViT only')
        vitb = ImageEncoder('ViT-B-32', '')
        _, sec = timed(lambda: vitb.encode_images(imgs[:64], batch_size=32))
        add(bench='encode', what='ViT-B-32 images (random weights)', n=64, value=64 / sec, unit='images/s', seconds=sec, note='paper architecture, speed only')
        del vitb

        # --- held-out recall against chance
        for name, enc in (('tiny CLIP', clip), ('tiny CLIP untrained', untrained)):
            for r in clip_recall(enc, pairs, root, ks=(1, 5)):
                add(bench='recall', what=f"{name} {r['direction']}", n=r['n'], k=r['k'], value=r['recall'], random=r['random'], unit='recall')
        clean = clip.encode_images(imgs)
        noisy = clip.encode_images([corrupt_image(im, 'blur', 0.5, seed=i) for i, im in enumerate(imgs)])
        for k, v in recall_at_k(noisy, clean).items():
            add(bench='recall', what='tiny CLIP blurred image->clean image', n=len(imgs), k=k, value=v, random=min(1, k / len(imgs)), unit='recall', note='blur level 0.5')
        drawn = list(dict.fromkeys(t for t in ('\n'.join(s.meta.get('text') or []) for s in samples) if t))
        keys = minilm.encode(drawn)
        q = minilm.encode([corrupt_text(t, 0.5, seed=i) for i, t in enumerate(drawn)])
        for k, v in recall_at_k(q, keys).items():
            add(bench='recall', what='MiniLM corrupted text->clean text', n=len(drawn), k=k, value=v, random=min(1, k / len(drawn)), unit='recall', note='char edits level 0.5')
        pos = {t: i for i, t in enumerate(drawn)}
        qs = [(s.question, pos['\n'.join(s.meta['text'])]) for s in samples if s.meta.get('text')]
        for k, v in recall_at_k(minilm.encode([x for x, _ in qs]), keys, gold=[g for _, g in qs]).items():
            add(bench='recall', what='MiniLM question->text on its image', n=len(qs), k=k, value=v, random=min(1, k / len(drawn)), unit='recall', note=f'{len(drawn)} candidate texts')

    # --- FAISS search against numpy brute force on the same vectors: structureless vectors (IVF's worst case)
    #     and clustered ones (1,000 gaussian clusters; same-cluster cosine ~0.5, like topical text embeddings)
    import faiss
    faiss.omp_set_num_threads(len(os.sched_getaffinity(0)))  # torch.set_num_threads above also set faiss's OpenMP pool
    rng = np.random.default_rng(0)
    d, n, m, k = 384, a.n_vectors, a.n_queries, 10
    centers = rng.standard_normal((1000, d)).astype(np.float32)
    def draw(size, spread):
        if spread is None: return l2_normalize(rng.standard_normal((size, d)).astype(np.float32))
        return l2_normalize(centers[rng.integers(0, 1000, size)] + spread * rng.standard_normal((size, d)).astype(np.float32))
    for data, spread in (('uniform', None), ('clustered', 1.0)):
        X, Q = draw(n, spread), draw(m, spread)
        def brute():
            out = []
            for i in range(0, m, 256):
                s = Q[i:i+256] @ X.T
                top = np.argpartition(-s, k, axis=1)[:, :k]
                out.append(np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), 1), 1))
            return np.concatenate(out)
        exact, sec = timed(brute, 2)
        add(bench='search', what=f'numpy brute force (Q @ X.T + argpartition), {data}', n=n, k=k, value=m / sec, unit='queries/s', seconds=sec, note=f'd={d}, {m} queries, faiss threads {faiss.omp_get_max_threads()}')
        flat, bsec = timed(lambda: make_index(X, 'flat')[0])
        (_, I), sec = timed(lambda: flat.search(Q, k), 2)
        add(bench='search', what=f'FAISS IndexFlatIP, {data}', n=n, k=k, value=m / sec, unit='queries/s', seconds=sec,
            note=f'same top-{k} as numpy for {float((I == exact).all(1).mean()):.3f} of queries; build {bsec:.2f}s')
        (ivf, info), bsec = timed(lambda: make_index(X, 'ivf', nlist=1024))
        for nprobe in (8, 32, 128):
            ivf.nprobe = nprobe
            (_, J), sec = timed(lambda: ivf.search(Q, k), 2)
            rec = float(np.mean([len(set(a_) & set(b_)) / k for a_, b_ in zip(J, exact)]))
            add(bench='search', what=f"FAISS IVF{info['nlist']},Flat nprobe={nprobe}, {data}", n=n, k=k, value=m / sec, unit='queries/s', seconds=sec,
                note=f'recall@{k} vs exact {rec:.3f}; train+add {bsec:.1f}s')
    write_csv(a.out, rows, columns=COLS)
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
