"""Build the docs site without Quarto: Sphinx + myst-nb from the nbdev notebooks and the latest run of each study.

`python docs/build.py` (what `make docs` runs) does three things:

1. executes every library notebook (`nbs/*.ipynb`, `nbs/studies/*/*.ipynb`) the way `nbdev_test` does (execnb's
   `CaptureShell`, one process per notebook, cells flagged with `tst_flags` or `#| eval: false` not run), caching the
   executed copy under `docs/_build/cache/` keyed by the notebook's code and the library's source, so a second build
   executes nothing;
2. turns the notebooks into a Sphinx source tree (`docs/_build/src/`): nbdev directives applied and stripped
   (`#| hide` cells dropped, `#| export` cells replaced by API entries that autodoc renders with their signature, a
   docments table and a link to the exported source), plus the executed experiment notebooks of the latest run of each
   study (`runs/<study>/<profile>-<stamp>/<nb>/<nb>.ipynb`), or a page that says how to produce one;
3. runs `sphinx-build` into `docs/_build/html/` (pydata-sphinx-theme, search, viewcode).

Options select a reduced build (`--only 00_registry 02_config --studies example`) and other folders (`--runs`,
`--out`), which the docs test uses."""
from __future__ import annotations
import argparse, ast, hashlib, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT/'docs'
LIB = 'vlm_nb'
CACHE_VERSION = 1  # bump when the executed copies change form
RUN_RE = re.compile(r'^(?P<profile>.+)-(?P<stamp>\d{8}-\d{6})$')

# ---------------------------------------------------------------------------------------------------------- discovery
def _visible(p:Path, root:Path) -> bool: return not any(s.startswith(('_', '.')) for s in p.relative_to(root).parts)

def library_notebooks(nbs:Path) -> list[Path]:
    "The library notebooks of `nbs/` in their numbered order (not the index, not the study packages)"
    return sorted(p for p in nbs.glob('*.ipynb') if _visible(p, nbs) and p.stem != 'index')

def studies(nbs:Path) -> list[str]:
    "Every study: a package folder under `nbs/studies/` or an experiment folder under `nbs/experiments/`"
    names = {p.name for d in ('studies', 'experiments') if (nbs/d).is_dir() for p in (nbs/d).iterdir()
             if p.is_dir() and _visible(p, nbs/d)}
    return sorted(names)

def study_package_notebooks(nbs:Path, study:str) -> list[Path]:
    d = nbs/'studies'/study
    return sorted(p for p in d.glob('*.ipynb') if _visible(p, nbs)) if d.is_dir() else []

def experiment_notebooks(nbs:Path, study:str) -> list[Path]:
    d = nbs/'experiments'/study
    return sorted(d.glob('[0-9]*.ipynb')) if d.is_dir() else []

def latest_run(runs:Path, study:str) -> Path|None:
    "Newest run folder `runs/<study>/<profile>-<stamp>/` (`vlm_nb.records.study_runs`) that holds at least one executed notebook"
    from vlm_nb.records import study_runs
    return next((p for p in reversed(study_runs(study, runs)) if any(p.glob('*/*.ipynb'))), None)

def headline_section(runs:Path) -> str:
    "`runs/summary.md` (written by `vlm_nb reproduce`) as a section of the studies page, its links to run folders as plain names"
    f = runs/'summary.md'
    if not f.exists(): return ''
    body = re.sub(r'\[([^\]]+)\]\([^)]*\)', r'`\1`', f.read_text())
    body = re.sub(r'^# .*$', '', body, count=1, flags=re.M).strip()
    return f"\n\n## Headline numbers of the latest runs\n\nFrom `runs/summary.md`:\n\n{body}\n"

# ---------------------------------------------------------------------------------------------------------- execution
def _flags() -> list[str]:
    from nbdev.config import get_config
    return str(get_config().get('tst_flags', '')).split()

def library_hash(root:Path=ROOT) -> str:
    "Hash of the library's source: executed outputs depend on it"
    h = hashlib.sha256()
    for p in sorted((root/LIB).rglob('*.py')):
        if '__pycache__' in p.parts: continue
        h.update(str(p.relative_to(root)).encode()); h.update(p.read_bytes())
    return h.hexdigest()

def cache_key(nb_path:Path, lib_hash:str) -> str:
    nb = json.loads(nb_path.read_text())
    code = [''.join(c['source']) if isinstance(c['source'], list) else c['source'] for c in nb['cells'] if c['cell_type'] == 'code']
    return hashlib.sha256(json.dumps([CACHE_VERSION, code, _flags(), lib_hash]).encode()).hexdigest()[:16]

def execute_one(nb_path:Path, out_path:Path) -> int:
    "Run `nb_path` as `nbdev_test` does (flagged and `eval: false` cells skipped), but keep going past errors; save it with outputs"
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    os.environ.setdefault('IN_TEST', '1')
    flags = set(_flags())
    nb = NBProcessor(nb_path, procs=FrontmatterProc, process=True).nb
    def _no_eval(cell):
        if cell.cell_type != 'code': return True
        if 'nbdev_export(' in cell.source: return True
        direc = getattr(cell, 'directives_', {}) or {}
        if direc.get('eval:', [''])[0].lower() == 'false': return True
        return bool(flags & direc.keys())
    fm = getattr(nb, 'frontmatter_', {}) or {}
    if str(fm.get('skip_exec', '')).lower() not in ('true', '1', 'yes'):
        shell = CaptureShell(nb_path)
        with working_directory(nb_path.parent): shell.run_all(nb, exc_stop=False, preproc=_no_eval)
    raw = json.loads(nb_path.read_text())  # the notebook as written: nbdev's processing dropped its title cell and directives
    for c in nb.cells:
        if c.cell_type == 'code' and c.get('outputs'): raw['cells'][c.idx_]['outputs'] = c.outputs
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix('.tmp'); tmp.write_text(json.dumps(raw, indent=1)); tmp.replace(out_path)
    return 0

PRELOAD = ('numpy', 'pandas', 'torch', 'matplotlib', 'matplotlib_inline.backend_inline', 'PIL.Image', 'IPython',
           'execnb.shell', 'nbdev.process', 'nbdev.frontmatter', 'nbdev.config', 'fastcore.test')

def exec_many(items:list, jobs:int=2, timeout:float=900) -> int:
    "Execute `(notebook, output)` pairs `jobs` at a time, each forked from this process after it imported `PRELOAD`"
    # torch alone takes seconds to import: forking saves that per notebook; one JSON line per notebook goes to stdout
    os.environ.setdefault('IN_TEST', '1'); os.environ['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'
    import importlib, signal, traceback
    for m in PRELOAD:
        try: importlib.import_module(m)
        except Exception: pass
    queue, running = list(items), {}
    while queue or running:
        while queue and len(running) < max(1, jobs):
            nb, out = map(Path, queue.pop(0))
            logf = out.with_suffix('.log'); out.parent.mkdir(parents=True, exist_ok=True)
            sys.stdout.flush(); sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the notebook's own process: a fresh interpreter state but for the preloaded modules
                rc = 1
                try:
                    os.setpgid(0, 0)
                    fd = os.open(logf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); os.dup2(fd, 1); os.dup2(fd, 2)
                    rc = execute_one(nb, out)
                except BaseException: traceback.print_exc()
                finally:
                    sys.stdout.flush(); sys.stderr.flush(); os._exit(rc)
            running[pid] = (nb, out, time.time(), logf)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for p, (nb, out, t0, logf) in running.items():
                if time.time() - t0 > timeout:
                    try: os.killpg(p, signal.SIGKILL)
                    except ProcessLookupError: pass
            time.sleep(0.05); continue
        if pid not in running: continue
        nb, out, t0, logf = running.pop(pid)
        rc = os.waitstatus_to_exitcode(status)
        ok = rc == 0 and out.exists()
        msg = '' if ok else f"exit {rc}{' (timed out)' if time.time() - t0 > timeout else ''}: " + \
              (logf.read_text(errors='replace')[-3000:] if logf.exists() else '')
        if ok: logf.unlink(missing_ok=True)
        print(json.dumps(dict(nb=str(nb), ok=ok, secs=round(time.time() - t0, 1), msg=msg)), flush=True)
    return 0

def executed(nbs:list[Path], cache:Path, jobs:int=2, timeout:float=900, log=print) -> dict[Path, Path]:
    "Executed copy of each notebook, from `cache` or run now (`jobs` notebooks at a time, each in its own process)"
    lib_hash, res, todo = library_hash(), {}, {}
    for nb in nbs:
        rel = nb.resolve().relative_to(ROOT) if nb.resolve().is_relative_to(ROOT) else Path(nb.name)
        stem = str(rel.with_suffix('')).replace('/', '__')
        out = cache/f"{stem}.{cache_key(nb, lib_hash)}.ipynb"
        res[nb] = out
        if not out.exists(): todo[str(nb)] = (nb, out, stem)
    if not todo: return res
    log(f"[docs] executing {len(todo)} of {len(nbs)} notebooks ({jobs} at a time)")
    cache.mkdir(parents=True, exist_ok=True)
    spec = cache/'.todo.json'; spec.write_text(json.dumps([[str(nb), str(out)] for nb, out, _ in todo.values()]))
    cmd = [sys.executable, __file__, '--exec-many', str(spec), '--jobs', str(jobs), '--timeout', str(timeout)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        for line in proc.stdout:
            try: r = json.loads(line)
            except ValueError: log(line.rstrip()); continue
            nb, out, stem = todo.pop(r['nb'])
            name = nb.relative_to(ROOT) if nb.is_relative_to(ROOT) else nb
            log(f"  executed {name} in {r['secs']:.1f} s" + ('' if r['ok'] else f" FAILED, shown without outputs: {r['msg']}"))
            if r['ok']:
                for old in cache.glob(f"{stem}.*.ipynb"):
                    if old != out: old.unlink()
            else: res[nb] = nb
    spec.unlink(missing_ok=True)
    for nb, out, stem in todo.values(): log(f"  {nb}: no result, shown without outputs"); res[nb] = nb
    return res

# ---------------------------------------------------------------------------------------------------------- conversion
_DIREC = re.compile(r'^\s*#\s*\|\s*(.*)$')

def split_directives(src:str) -> tuple[dict, str]:
    "nbdev directives at the top of a cell (`#| export foo`, `#| eval: false`) and the source without them"
    lines, direc = src.splitlines(), {}
    i = 0
    while i < len(lines):
        m = _DIREC.match(lines[i])
        if not m:
            if lines[i].strip() == '' and i < len(lines)-1 and _DIREC.match(lines[i+1] or ''): i += 1; continue
            break
        parts = m.group(1).split()
        if parts: direc[parts[0].rstrip(':')] = parts[1:]
        i += 1
    body = [l for l in lines[i:] if not l.rstrip().endswith('#| hide_line')]
    return direc, '\n'.join(body).strip('\n')

def module_name(mod:str) -> str:
    mod = f"{LIB}.{mod}"
    return mod[:-len('.__init__')] if mod.endswith('.__init__') else mod

def _patched_class(node) -> str|None:
    "The class a function is patched onto, for fastcore's `@patch`/`@patch_to(Cls)` and look-alikes (`@_patch_to(Cls)`)"
    for d in node.decorator_list:
        f = d.func if isinstance(d, ast.Call) else d
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, 'id', '')
        if not name.lstrip('_').startswith('patch'): continue
        if isinstance(d, ast.Call) and d.args and isinstance(d.args[0], (ast.Name, ast.Attribute)): return ast.unparse(d.args[0])
        args = node.args.posonlyargs + node.args.args
        if args and args[0].annotation is not None: return ast.unparse(args[0].annotation)
    return None

def api_entries(src:str, mod:str, seen:set) -> list[str]:
    "MyST directives that document the public functions, classes and constants defined at the top of `src`"
    try: tree = ast.parse(src)
    except SyntaxError: return []
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name.startswith('_'): continue
            kind, full, opts = 'autofunction', f"{mod}.{node.name}", []
            if isinstance(node, ast.ClassDef):
                kind = 'autoclass'
                meths = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                         and not n.name.startswith('_') and ast.get_docstring(n)]
                if meths: opts.append(f":members: {', '.join(meths)}")
            elif (cls := _patched_class(node)):  # `@patch_to(Cls)` / fastcore's `@patch` on `self:Cls`: a method of `Cls`
                kind, full = 'automethod', f"{mod}.{cls}.{node.name}"
            if full in seen: opts.append(':no-index:')
            seen.add(full)
            out.append(f"```{{eval-rst}}\n.. {kind}:: {full}\n" + ''.join(f"   {o}\n" for o in opts) + "```")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if len(targets) != 1 or not isinstance(targets[0], ast.Name) or not targets[0].id[:1].isupper(): continue  # constants, registries
            full = f"{mod}.{targets[0].id}"
            value = ast.get_source_segment(src, node.value) if node.value is not None else None
            opts = [f":annotation: = {value}"] if value and '\n' not in value and len(value) <= 80 else [':no-value:']
            if full in seen: opts.append(':no-index:')
            seen.add(full)
            out.append(f"```{{eval-rst}}\n.. autodata:: {full}\n" + ''.join(f"   {o}\n" for o in opts) + "```")
    return out

def _clean_outputs(outputs:list) -> list:
    "Outputs a static page can show: no widget views (their JS is not on the page), no empty streams"
    res = []
    for o in outputs:
        o = dict(o)
        if 'data' in o:
            o['data'] = {k: v for k, v in o['data'].items() if not k.startswith('application/vnd.jupyter')}  # widgets
            if not o['data']: continue
            o['metadata'] = {k: v for k, v in (o.get('metadata') or {}).items() if k in o['data']}
        if o.get('output_type') == 'stream':  # a progress bar redraws its line with '\r': keep what a terminal shows last
            text = ''.join(o.get('text', ''))
            o['text'] = '\n'.join(l.rstrip('\r').rsplit('\r', 1)[-1] for l in text.split('\n'))
            if not o['text'].strip(): continue
        res.append(o)
    import nbformat
    return [nbformat.from_dict(o) for o in res]

def _src(c) -> str: return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def convert(nb:dict, kind:str='library', title:str|None=None) -> dict:
    "A docs notebook from an nbdev (`kind='library'`) or executed experiment notebook (`kind='run'`)"
    import nbformat
    cells, mod, seen = [], None, set()
    for c in nb['cells']:
        src, ct = _src(c), c['cell_type']
        if ct == 'raw': continue  # frontmatter (`skip_exec`) and other raw cells
        tags = [t for t in (c.get('metadata') or {}).get('tags', []) if t]
        if ct == 'markdown':
            cells.append(nbformat.v4.new_markdown_cell(src)); continue
        direc, body = split_directives(src)
        if 'default_exp' in direc:
            mod = module_name(direc['default_exp'][0]) if direc['default_exp'] else mod
        if 'hide' in direc or direc.get('include', [''])[0] == 'false' or 'exporti' in direc: continue
        if kind == 'library' and ({'export', 'exports'} & direc.keys()):
            args = direc.get('export') or direc.get('exports')  # `#| export other.module` exports elsewhere
            target = module_name(args[0]) if args else mod
            entries = api_entries(body, target, seen) if target else []
            if 'exports' in direc: cells.append(nbformat.v4.new_code_cell(body))
            if entries: cells.append(nbformat.v4.new_markdown_cell('\n\n'.join(entries)))
            continue
        outputs = [] if direc.get('output', [''])[0] == 'false' else _clean_outputs(c.get('outputs', []))
        if not body.strip() and not outputs: continue
        cell = nbformat.v4.new_code_cell(body, outputs=outputs, execution_count=None)
        if tags: cell.metadata['tags'] = tags
        if direc.get('echo', [''])[0] == 'false': cell.metadata.setdefault('tags', []).append('remove-input')
        cells.append(cell)
    if title and not any(c.cell_type == 'markdown' and re.match(r'^#\s', c.source) for c in cells):
        cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
                    'language_info': {'name': 'python'}}
    return out

def nb_title(nb:dict, default:str) -> str:
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+)$', _src(c), re.M)
            if m: return m.group(1).strip()
    return default

def nb_subtitle(nb:dict) -> str:
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^>\s*(.+)$', _src(c), re.M)
            if m: return m.group(1).strip()
    return ''

# ---------------------------------------------------------------------------------------------------------- pages
_written: set[Path] = set()

def _write(path:Path, text:str):
    "Write `text` unless `path` already holds it: Sphinx then rebuilds only the pages that changed"
    _written.add(path.resolve())
    if path.exists() and path.read_text() == text: return
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text(text)

def _write_nb(nb, path:Path):
    import nbformat
    for i, c in enumerate(nb.cells): c.id = f"c{i}"  # not nbformat's random ids: an unchanged page stays byte-identical
    _write(path, nbformat.writes(nb))

def _prune(src:Path):
    "Remove the pages of an earlier build that this one did not write"
    for p in sorted(src.rglob('*'), reverse=True):
        if p.is_file() and p.resolve() not in _written: p.unlink()
        elif p.is_dir() and not any(p.iterdir()): p.rmdir()

def _toctree(entries:list[str], caption:str|None=None, hidden=False, maxdepth=1) -> str:
    opts = [f":maxdepth: {maxdepth}", ':titlesonly:'] + ([f":caption: {caption}"] if caption else []) + ([':hidden:'] if hidden else [])
    return "```{toctree}\n" + '\n'.join(opts) + '\n\n' + '\n'.join(entries) + "\n```\n"

def _md_escape(s:str) -> str: return s.replace('|', '\\|')

def _dur(md:dict) -> str:
    import datetime as dt
    try: return f"{(dt.datetime.fromisoformat(md['end_time']) - dt.datetime.fromisoformat(md['start_time'])).total_seconds():.0f} s"
    except Exception: return ''

def run_pages(src:Path, study:str, nbs:Path, runs:Path) -> list[str]:
    "Pages of the latest run of `study` (or one saying how to make it); returns the run page's docname"
    d, run = src/'studies'/study/'run', latest_run(runs, study)
    exp = experiment_notebooks(nbs, study)
    how = (f"```sh\nmake reproduce STUDY={study}          # or: vlm_nb reproduce --study {study} --profile tiny\n"
           f"make docs\n```\n")
    if run is None:
        what = (f"The study's experiment notebooks ({', '.join(f'`{p.name}`' for p in exp)}) have not been run on this "
                f"machine yet." if exp else "The study has no experiment notebooks under `nbs/experiments/` yet.")
        _write(d/'index.md', f"# Latest run of {study}\n\nNo run of `{study}` was found under `{runs.name}/{study}/`. {what}\n\n"
               f"To produce one and put its executed notebooks, figures and tables on this site, run:\n\n{how}")
        return [f"{study}/run/index"]
    m = RUN_RE.match(run.name)
    rows, entries = [], []
    stems = [p.stem for p in exp] or sorted(p.parent.name for p in run.glob('*/*.ipynb'))
    for stem in stems:
        ex = run/stem/f"{stem}.ipynb"
        mdp = run/stem/'run_metadata.json'
        md = json.loads(mdp.read_text()) if mdp.exists() else {}
        status = md.get('status', 'not run' if not ex.exists() else '?')
        if ex.exists():
            nb = json.loads(ex.read_text())
            title = nb_title(nb, stem)
            _write_nb(convert(nb, 'run', title=stem), d/f"{stem}.ipynb")
            entries.append(stem); link = f"[{_md_escape(title)}]({stem}.ipynb)"
        else: link = f"`{stem}`"
        rows.append(f"| {link} | {status} | {md.get('start_time', '')} | {_dur(md)} |")
    text = (f"# Latest run of {study}\n\nRun folder `{run.relative_to(runs.parent) if run.is_relative_to(runs.parent) else run}` "
            f"(profile `{m['profile']}`, started {m['stamp']}). Each page below is the executed notebook of that run, "
            f"with its figures and tables.\n\n| notebook | status | started (UTC) | took |\n|---|---|---|---|\n" + '\n'.join(rows) +
            f"\n\nTo make a newer run and rebuild these pages:\n\n{how}\n" + _toctree(entries, hidden=True))
    _write(d/'index.md', text)
    return [f"{study}/run/index"]

def build_source(src:Path, nbs:Path=ROOT/'nbs', runs:Path=ROOT/'runs', only:list|None=None, only_studies:list|None=None,
                 cache:Path=DOCS/'_build'/'cache', jobs:int=2, timeout:float=900, log=print) -> Path:
    "Write the Sphinx source tree for the site under `src`"
    _written.clear()
    pick = lambda p: not only or any(p.stem.startswith(o) for o in only)
    lib = [p for p in library_notebooks(nbs) if pick(p)]
    sts = [s for s in studies(nbs) if only_studies is None or s in only_studies]
    pkg = {s: study_package_notebooks(nbs, s) for s in sts}
    index_nb = nbs/'index.ipynb'
    ex = executed(lib + [p for s in sts for p in pkg[s]], cache, jobs=jobs, timeout=timeout, log=log)
    # home page: the README notebook
    home = convert(json.loads(index_nb.read_text())) if index_nb.exists() else None
    import nbformat
    if home is None: home = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {LIB}")])
    home.cells.append(nbformat.v4.new_markdown_cell(
        "## Contents\n\n- [Library](library/index.md): one page per notebook of `nbs/`, with the API of every exported "
        "function and class\n- [Studies](studies/index.md): each study's package and the executed notebooks of its latest run\n\n"
        + _toctree(['library/index', 'studies/index'], hidden=True)))
    _write_nb(home, src/'index.ipynb')
    # library
    rows = []
    for p in lib:
        nb = json.loads(ex[p].read_text())
        _write_nb(convert(nb, 'library', title=p.stem), src/'library'/f"{p.stem}.ipynb")
        rows.append(f"| [{_md_escape(nb_title(nb, p.stem))}]({p.stem}.ipynb) | `{p.name}` | {_md_escape(nb_subtitle(nb))} |")
    _write(src/'library'/'index.md', "# Library\n\nOne page per notebook of `nbs/`, in the order of the layers "
           "(foundation, data, components, shared machinery, runner and CLI). Each page is the executed notebook: prose, "
           "examples with their outputs, and the API of every exported function and class with a link to its source.\n\n"
           "| module | notebook | what it does |\n|---|---|---|\n" + '\n'.join(rows) + '\n\n' +
           _toctree([p.stem for p in lib], hidden=True))
    # studies
    srows, stoc = [], []
    for s in sts:
        d = src/'studies'/s; d.mkdir(parents=True, exist_ok=True)
        entries, head = [], None
        for p in pkg[s]:
            nb = convert(json.loads(ex[p].read_text()), 'library', title=p.stem)
            if p.stem == 'index': head = nb; continue
            _write_nb(nb, d/f"{p.stem}.ipynb"); entries.append(p.stem)
        run_pages(src, s, nbs, runs)
        run = latest_run(runs, s)
        lines = (f"Package notebooks: `nbs/studies/{s}/`" if pkg[s] else "No study package (`nbs/studies/{s}/`): experiments only") + \
                (f"; experiment notebooks: `nbs/experiments/{s}/`." if experiment_notebooks(nbs, s) else '.')
        body = (f"{lines}\n\n- [Latest run](run/index.md): " + (f"`{run.name}`" if run else "none yet (how to make one)") + '\n' +
                ''.join(f"- [{e}]({e}.ipynb)\n" for e in entries) + '\n' + _toctree(entries + ['run/index'], hidden=True))
        if head is None: head = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Study: {s}")])
        head.cells.append(nbformat.v4.new_markdown_cell(f"## Pages\n\n{body}"))
        head.metadata = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}
        _write_nb(head, d/'index.ipynb'); stoc.append(f"{s}/index")
        srows.append(f"| [{s}]({s}/index.ipynb) | {len(pkg[s])} | {len(experiment_notebooks(nbs, s))} | "
                     f"{f'`{run.name}`' if run else 'no run yet'} |")
    _write(src/'studies'/'index.md', "# Studies\n\nA study is a plug-in package (`nbs/studies/<name>/`) and its experiment "
           "notebooks (`nbs/experiments/<name>/`). Each study's pages show its package notebooks and the executed notebooks "
           "of its latest run under `runs/<name>/`.\n\n| study | package notebooks | experiment notebooks | latest run |\n"
           "|---|---|---|---|\n" + '\n'.join(srows) + headline_section(runs) + '\n\n' + _toctree(stoc, hidden=True))
    _prune(src)
    return src

def sphinx(src:Path, out:Path) -> int:
    "Build HTML from `src` into `out` with the configuration in `docs/conf.py` (`-j 2` measured slower than serial)"
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-c', str(DOCS),
           '-d', str(out.parent/'doctrees'), str(src), str(out)]
    env = dict(os.environ, VLM_NB_DOCS_ROOT=str(ROOT))
    return subprocess.run(cmd, env=env, cwd=ROOT).returncode

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(DOCS/'_build'), help='build folder: src/, html/, cache/, doctrees/')
    ap.add_argument('--runs', default=str(ROOT/'runs'), help='runs folder (latest run of each study)')
    ap.add_argument('--nbs', default=str(ROOT/'nbs'))
    ap.add_argument('--only', nargs='*', help='library notebooks whose stem starts with one of these (default: all)')
    ap.add_argument('--studies', nargs='*', help='studies to include (default: all)')
    ap.add_argument('--cache', help='executed-notebook cache (default: OUT/cache)')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('DOCS_JOBS', 2)), help='notebooks executed at a time')
    ap.add_argument('--exec-one', nargs=2, metavar=('NB', 'OUT'), help=argparse.SUPPRESS)
    ap.add_argument('--exec-many', help=argparse.SUPPRESS)
    ap.add_argument('--timeout', type=float, default=900, help='seconds one notebook may run')
    a = ap.parse_args(argv)
    if a.exec_one: return execute_one(Path(a.exec_one[0]).resolve(), Path(a.exec_one[1]))
    if a.exec_many: return exec_many(json.loads(Path(a.exec_many).read_text()), a.jobs, a.timeout)
    t0, out = time.time(), Path(a.out).resolve()
    build_source(out/'src', Path(a.nbs).resolve(), Path(a.runs).resolve(), a.only, a.studies,
                 Path(a.cache).resolve() if a.cache else out/'cache', a.jobs, a.timeout)
    t1 = time.time()
    rc = sphinx(out/'src', out/'html')
    print(f"[docs] sources {t1-t0:.1f} s, sphinx {time.time()-t1:.1f} s; site: {out/'html'/'index.html'}", flush=True)
    return rc

if __name__ == '__main__': sys.exit(main())
