"""`make docs`: a reduced build of the site (two library notebooks, the example study with a real run, a study without
one), served on localhost and checked in headless Chromium over the DevTools protocol (`docs/check.py`): every page
loads without console errors, every image loads, every internal link (API entries, `[source]` links) resolves, every
API entry links to its source, the search box finds `load_config`. Screenshots of the index and the study page are
kept under the test's tmp folder (printed at the end)."""
import html as htmllib, importlib.util, json, re, sys
from pathlib import Path
import pytest
from conftest import ROOT, run_cmd

pytestmark = pytest.mark.timeout(300)

def _docs_module(name:str):
    spec = importlib.util.spec_from_file_location(f"vlm_nb_docs_{name}", ROOT/'docs'/f'{name}.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

def _text(page:Path) -> str:
    "The visible text of an HTML page, tags removed and spaces collapsed"
    return re.sub(r'\s+', ' ', htmllib.unescape(re.sub(r'<[^>]+>', ' ', page.read_text())))

def _build(out:Path, runs:Path):
    args = [sys.executable, ROOT/'docs'/'build.py', '--out', out, '--runs', runs, '--only', '00_registry', '02_config',
            '--studies', 'example', 'retrieval', '--jobs', '2']
    return run_cmd(args, check=True, timeout=240)

def test_docs_site(tmp_path):
    check = _docs_module('check')
    check.find_chromium()  # no browser: fail here with the install command, never skip
    from vlm_nb.runner import run_notebook
    runs = tmp_path/'runs'
    run_notebook(ROOT/'nbs'/'experiments'/'example'/'00_example.ipynb', {'profile': 'tiny'}, progress=False, progress_every=0,
                 output_dir=runs/'example'/'tiny-20260101-000000'/'00_example', cwd=tmp_path)
    (runs/'summary.md').write_text("# Headline numbers of every study\n\n| study | run | metric | value |\n|---|---|---|---|\n"
                                   "| example | [tiny-20260101-000000](example/tiny-20260101-000000/) | fit error | 0.25 |\n")
    out = tmp_path/'site'
    first = _build(out, runs)
    assert re.search(r'executing (\d+) of \1 notebooks', first.stdout), first.stdout  # a fresh cache: all of them run
    html = out/'html'

    # nbdev directives applied: no `#|` lines, exported code replaced by API entries with a docments table
    cfg_page = (html/'library'/'02_config.html').read_text()
    assert '#|' not in cfg_page and 'default_exp' not in cfg_page
    assert 'id="vlm_nb.config.load_config"' in cfg_page and 'docments' in cfg_page
    assert 'def load_config' not in cfg_page  # the export cell's source is not shown, its API entry is
    # examples carry their outputs (the notebooks are committed without them)
    assert 'cell_output' in (html/'library'/'00_registry.html').read_text()
    # the run of the example study and a study without a run
    run_page = (html/'studies'/'example'/'run'/'00_example.html').read_text()
    assert '<img' in run_page and 'example fit' in run_page
    assert 'tiny-20260101-000000' in _text(html/'studies'/'example'/'run'/'index.html')
    heads = _text(html/'studies'/'index.html')  # runs/summary.md on the studies page, its run links as plain names
    assert 'Headline numbers of the latest runs' in heads and 'fit error' in heads and 'tiny-20260101-000000' in heads, heads
    norun = _text(html/'studies'/'retrieval'/'run'/'index.html')
    assert 'No run of' in norun and re.search(r'make reproduce STUDY ?= ?retrieval', norun), norun

    shots = tmp_path/'shots'
    rep = check.check_site(html, shots, search='load_config', study_page='studies/example/run/00_example.html')
    print(json.dumps({k: v for k, v in rep.items() if k != 'problems'}, indent=1))
    assert rep['problems'] == [], '\n'.join(rep['problems'])
    assert rep['pages'] >= 10 and rep['images'] >= 1 and rep['api_entries'] >= 20, rep
    assert any('load_config' in t for t, h in rep['search_hits']), rep['search_hits']
    for p in map(Path, rep['shots']): assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and p.stat().st_size > 10_000, p
    assert len(rep['shots']) == 2

    # a second build executes nothing (the executed notebooks are cached)
    second = _build(out, runs)
    assert 'executing' not in second.stdout, second.stdout
