"""Synthetic QA generation (issue #15 part 1): the server backend against a fake OpenAI server (a test double) and a
real `transformers serve`, retries, repair and rejection counts, resume after a real kill"""
import json, os, signal, subprocess, sys, textwrap, threading, time
from dataclasses import asdict, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest
from vlm_nb.records import load_jsonl
from vlm_nb.studies.reasoning.qagen import (QAGenCfg, ServerGenerator, GeneratorError, TRANSFORMERS_SERVE, ensure_tiny_llm,
                                            make_generator, run_qagen, write_sample_sources, main)

ENV = dict(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_DATASETS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
os.environ.update(ENV)


class FakeOpenAI:
    """TEST DOUBLE: a real HTTP server speaking the OpenAI completions protocol that returns canned JSON.
    `fail_first` requests get HTTP 500; `mode` picks the QA output: 'good', 'fenced' (code fence + prose),
    'alternate' (garbage the first time a QA prompt comes, good on its retry); `delay` seconds per request."""
    def __init__(self, mode='good', fail_first=0, delay=0.0):
        self.mode, self.fail_first, self.delay, self.requests, self.qa_requests, self.seen = mode, fail_first, delay, 0, 0, set()
        self.lock = threading.Lock()
        fake = self
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code); self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data))); self.end_headers(); self.wfile.write(data)
            def do_GET(self):
                self._send(200, {'status': 'ok'}) if self.path == '/health' else self._send(404, {})
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                with fake.lock: fake.requests += 1; n = fake.requests
                time.sleep(fake.delay)
                if n <= fake.fail_first: return self._send(500, {'error': 'warming up'})
                self._send(200, {'choices': [{'text': fake.answer(body['prompt']), 'index': 0}]})
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, prompt):
        if prompt.startswith('Rate each'):
            pairs = json.loads(prompt[prompt.rindex('\n[') + 1:])
            return json.dumps([dict(p, rating=1 + sum(map(ord, p['question'])) % 10) for p in pairs])
        with self.lock: self.qa_requests += 1; n = self.qa_requests; first = prompt not in self.seen; self.seen.add(prompt)
        qa = json.dumps([dict(question=f'What is fact {i} of request {n}?', answer=f'Fact {i}.') for i in range(3)])
        if self.mode == 'fenced': return f'Here are the pairs:\n```json\n{qa[:-1]},]\n```'
        if self.mode == 'alternate' and first: return 'ThThTh dddd no json here'
        return qa

    def close(self): self.httpd.shutdown(); self.httpd.server_close()


@pytest.fixture(scope='module')
def tiny(tmp_path_factory): return ensure_tiny_llm(tmp_path_factory.mktemp('m')/'tiny')

@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp('src'); write_sample_sources(d, n=1); return d

def _cfg(sources, out, tiny, url, **kw):
    return QAGenCfg(input_dir=str(sources), output_dir=str(out), backend='server', server_url=url, model=str(tiny),
                    max_seq_length=384, max_generation_tokens=64, overlap=32, num_pairs=3, max_tokens=64,
                    cleanup_threshold=5, retry_backoff=0.01, request_timeout=10, poll_interval=0.1, **kw)

def _consistent(c, out):
    assert c['pairs_rated'] + c['pairs_unrated'] == c['pairs_generated']
    assert c['pairs_kept'] + c['pairs_below_threshold'] == c['pairs_rated']
    assert sum(c['rating_histogram'].values()) == c['pairs_rated']
    assert c['chunks_parsed'] + c['chunks_repaired'] + c['chunks_rejected'] + c['chunks_error'] == c['chunks']
    assert c['outputs_parsed'] + c['outputs_repaired'] + c['outputs_rejected'] == c['generation_attempts']
    assert len(load_jsonl(out/'final/qa_pairs.jsonl')) == c['pairs_kept']
    assert len(load_jsonl(out/'rejected/filtered.jsonl')) == c['pairs_unrated'] + c['pairs_below_threshold']
    assert json.loads((out/'final/summary.json').read_text())['counts']['pairs_kept'] == c['pairs_kept']


def test_server_happy_path_with_retries(tmp_path, tiny, sources):
    fake = FakeOpenAI('good', fail_first=2)
    try: c = run_qagen(_cfg(sources, tmp_path, tiny, fake.url, summary=True))
    finally: fake.close()
    _consistent(c, tmp_path)
    assert (c['documents'], c['ingest_errors']) == (6, 0) and c['chunks'] >= 12, c
    assert c['chunks_parsed'] == c['chunks'] and c['pairs_generated'] == 3*c['chunks']
    assert c['requests']['retries'] == 2 and c['requests']['failures'] == 0
    assert 0 < c['pairs_kept'] < c['pairs_rated']  # the threshold (5) drops some
    rows = load_jsonl(tmp_path/'final/qa_pairs.jsonl')
    m = rows[0]['metadata']
    assert rows[0]['rating'] >= 5 and m['generator'] == f'server:{tiny}' and m['settings']['num_pairs'] == 3
    assert (tmp_path/'output'/f"{m['chunk']}.txt").exists() and m['source'].split('/')[0] in ('pdf', 'html', 'youtube', 'docx', 'ppt', 'txt')
    assert all(json.loads((tmp_path/f'output/{d}.summary.json').read_text())['summary'] for d in {r['metadata']['document'] for r in rows})


def test_repair_retry_reject_counted(tmp_path, tiny, sources):
    fake = FakeOpenAI('fenced')
    try: c = run_qagen(_cfg(sources, tmp_path/'fenced', tiny, fake.url))
    finally: fake.close()
    _consistent(c, tmp_path/'fenced')
    assert c['chunks_repaired'] == c['chunks'] and c['pairs_generated'] == 3*c['chunks']
    fake = FakeOpenAI('alternate')  # garbage first, good on the retry
    try: c = run_qagen(_cfg(sources, tmp_path/'alt', tiny, fake.url))
    finally: fake.close()
    _consistent(c, tmp_path/'alt')
    assert c['generation_retries'] == c['chunks'] == c['outputs_rejected'] and c['chunks_parsed'] == c['chunks']
    rej = load_jsonl(tmp_path/'alt/rejected/generation.jsonl')
    assert len(rej) == c['chunks'] and all(r['raw'] == 'ThThTh dddd no json here' for r in rej)


def test_server_down_marks_errors_then_rerun_fills_them(tmp_path, tiny, sources):
    fake = FakeOpenAI('good', fail_first=10**6)  # every request fails
    cfg = _cfg(sources, tmp_path, tiny, fake.url, request_retries=1)
    try:
        c = run_qagen(cfg)
        assert c['chunks_error'] == c['chunks'] and c['pairs_kept'] == 0
        assert len(load_jsonl(tmp_path/'rejected/generation.jsonl')) == c['chunks']  # one error row per chunk, nothing lost
        fake.fail_first = 0
        c2 = run_qagen(cfg)
    finally: fake.close()
    assert (c2['generated_now'], c2['reused_now'], c2['chunks_error']) == (c['chunks'], 0, 0)
    _consistent(c2, tmp_path)


def test_server_never_ready(tiny):
    with pytest.raises(GeneratorError, match='not ready'):
        make_generator(QAGenCfg(backend='server', server_url='http://127.0.0.1:9', model=str(tiny), ready_timeout=0.3, poll_interval=0.1))


def test_resume_after_kill(tmp_path, tiny, sources):
    "A run killed with SIGKILL mid-generation: the rerun generates only the chunks that had no result"
    fake = FakeOpenAI('good', delay=0.3)
    cfg = _cfg(sources, tmp_path, tiny, fake.url, batch_size=4)  # saved after every 4 chunks
    script = textwrap.dedent(f"""
        import json
        from vlm_nb.studies.reasoning.qagen import QAGenCfg, run_qagen
        run_qagen(QAGenCfg(**json.loads({json.dumps(json.dumps(asdict(cfg)))})))
    """)
    p = subprocess.Popen([sys.executable, '-c', script], env={**os.environ, **ENV}, start_new_session=True)
    try:
        gen_dir, t0 = tmp_path/'generated', time.time()
        while len(list(gen_dir.glob('*.json'))) < 3 and time.time() - t0 < 60 and p.poll() is None: time.sleep(0.05)
        os.killpg(p.pid, signal.SIGKILL); p.wait()
        done = len(list(gen_dir.glob('*.json')))
        assert p.returncode == -signal.SIGKILL and 3 <= done, (p.returncode, done)
        fake.delay = 0
        c = run_qagen(cfg)
    finally: fake.close()
    assert c['reused_now'] == done and c['generated_now'] == c['chunks'] - done > 0, (done, c)
    assert c['chunks_parsed'] == c['chunks']
    _consistent(c, tmp_path)
    assert not list(gen_dir.glob('.*.tmp'))  # atomic writes leave no partial file behind


def test_transformers_serve_real(tmp_path, tiny, sources, monkeypatch):
    "The real OpenAI-compatible `transformers serve`, started and stopped by the pipeline, with the tiny LLM"
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # the server process inherits it: one torch thread is fastest for the tiny LLM
    src = tmp_path/'src'
    for f in ('txt', 'html'):
        (src/f).mkdir(parents=True)
        for p in (sources/f).iterdir(): (src/f/p.name).write_bytes(p.read_bytes())
    cfg = replace(_cfg(src, tmp_path/'out', tiny, ''), server_url='', server_command=TRANSFORMERS_SERVE, max_tokens=8,
                  json_retries=0, ready_timeout=120, request_timeout=60, shutdown_timeout=10)
    gen = make_generator(cfg, tmp_path)
    try:
        assert isinstance(gen, ServerGenerator) and gen.process.proc.poll() is None
        c = run_qagen(cfg, gen)
        raw = gen.generate(['Hello'], max_tokens=4, temperature=0.0)
    finally: gen.close()
    assert gen.stopped in ('terminated', 'killed') and gen.process.proc.poll() is not None
    with pytest.raises(ProcessLookupError): os.kill(gen.process.proc.pid, 0)
    assert isinstance(raw[0], str) and raw[0]
    _consistent(c, tmp_path/'out')
    assert c['documents'] == 2 and c['chunks_rejected'] + c['chunks_repaired'] + c['chunks_parsed'] == c['chunks'] >= 2
    assert c['requests']['requests'] == c['generation_attempts'] + c['rating_batches'] + c['rating_retries'] + c['requests']['retries']
    rej = load_jsonl(tmp_path/'out/rejected/generation.jsonl')
    assert len(rej) == c['outputs_rejected'] and all(isinstance(r['raw'], str) for r in rej)


def test_cli_one_line_error(capsys):
    from vlm_nb.cli import one_line_errors
    assert one_line_errors(main, ['qagen.no_such_key=1']) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('[vlm_nb] error:') and 'no_such_key' in err and '\n' not in err


def test_unreadable_source_is_counted_not_fatal(tmp_path, tiny, sources):
    src = tmp_path/'src'
    (src/'ppt').mkdir(parents=True); (src/'txt').mkdir()
    (src/'ppt/old_deck.ppt').write_bytes(b'\xd0\xcf\x11\xe0 legacy binary')  # .ppt (not .pptx): no extractor
    (src/'pdf').mkdir(); (src/'pdf/broken.pdf').write_bytes(b'%PDF-1.4 truncated')
    for p in (sources/'txt').iterdir(): (src/'txt'/p.name).write_bytes(p.read_bytes())
    fake = FakeOpenAI('good')
    try: c = run_qagen(_cfg(src, tmp_path/'out', tiny, fake.url))
    finally: fake.close()
    assert (c['documents'], c['ingest_errors']) == (3, 2) and c['chunks_parsed'] == c['chunks'] > 0
    rej = [r for r in load_jsonl(tmp_path/'out/rejected/generation.jsonl') if r['status'] == 'ingest_error']
    assert sorted(r['source'] for r in rej) == ['pdf/broken.pdf', 'ppt/old_deck.ppt'] and all(r['error'] for r in rej)
