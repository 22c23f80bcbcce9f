# Sphinx configuration of the docs site; `python docs/build.py` (`make docs`) writes the source tree and calls Sphinx.
import inspect, os, re, sys
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(os.environ.get('VLM_NB_DOCS_ROOT', Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(ROOT))
_cfg = ConfigParser(); _cfg.read(ROOT/'settings.ini')
_s = _cfg['DEFAULT']

project = _s.get('title', 'vlm_nb')
author = _s.get('author', '')
copyright = _s.get('copyright', '')
release = version = _s.get('version', '')

extensions = ['myst_nb', 'sphinx.ext.autodoc', 'sphinx.ext.viewcode']
exclude_patterns = ['**.ipynb_checkpoints']
suppress_warnings = ['myst.header', 'misc.highlighting_failure', 'myst.xref_missing', 'mystnb.unknown_mime_type',
                     'toc.not_included', 'config.cache']

# notebooks come in executed (docs/build.py runs the library notebooks, the runner the experiment ones)
nb_execution_mode = 'off'
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widget JS from a CDN: the site works offline
myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3

# API: autodoc imports the exported modules; signatures show the defaults as written, a docments table follows
autodoc_member_order = 'bysource'
autodoc_preserve_defaults = False
autodoc_typehints = 'signature'
autodoc_default_options = {'undoc-members': False}
autoclass_content = 'class'
python_maximum_signature_line_length = 100
add_module_names = False
toc_object_entries_show_parents = 'hide'

html_theme = 'pydata_sphinx_theme'
html_title = f"{project} {release}"
html_static_path = [str(Path(__file__).parent/'_static')]
html_css_files = ['custom.css']
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    'navigation_depth': 3, 'show_toc_level': 2, 'show_nav_level': 1, 'collapse_navigation': False,
    'navbar_end': ['theme-switcher'], 'navbar_persistent': ['search-button-field'], 'navbar_align': 'left',
    'footer_start': ['copyright'], 'footer_end': ['sphinx-version'], 'secondary_sidebar_items': ['page-toc'],
}
html_sidebars = {'index': [], 'search': []}
html_favicon = str(Path(__file__).parent/'_static'/'favicon.svg')
html_context = {'default_mode': 'light'}

# myst pads an `eval-rst` block with one blank line per line above it so that messages point at the right line; in a
# notebook myst-nb numbers lines cell * 10000, so each API entry (autodoc runs inside `eval-rst`) parsed up to a million
# blank lines (55 s for two notebooks). Parse the block alone: a message then names the cell's page, not its line.
from myst_parser.mdit_to_docutils.base import DocutilsRenderer, make_document
from myst_parser.mocking import MockRSTParser

def _render_restructuredtext(self, token):
    newdoc = make_document()
    newdoc['source'], newdoc.settings, newdoc.reporter = self.document['source'], self.document.settings, self.reporter
    MockRSTParser().parse(token.content, newdoc)
    for node in newdoc:
        if node['names']: self.document.note_explicit_target(node, node)
    self.current_node.extend(newdoc.children)

DocutilsRenderer.render_restructuredtext = _render_restructuredtext

# ---------------------------------------------------------------------------------------- docstrings and docments
_TICK = re.compile(r'`([^`]+)`')
_IDENT = re.compile(r'^[A-Za-z_][\w.]*(\(\))?$')

def _rst_inline(s:str) -> str:
    "nbdev's markdown-ish docstring text as RST: backticked names become links where they resolve, the rest literals"
    out, last = [], 0
    for m in _TICK.finditer(s):
        out.append(re.sub(r'([*|\\])', r'\\\1', s[last:m.start()]))
        t = m.group(1).strip()
        pre = '\\ ' if m.start() and not (s[m.start()-1].isspace() or s[m.start()-1] in '([{<\'"-/:') else ''
        post = '\\ ' if m.end() < len(s) and s[m.end()].isalnum() else ''  # `Sample`s: RST needs a break after a role
        if _IDENT.match(t): out.append(f"{pre}:py:obj:`{t.removesuffix('()')}`{post}")
        elif t: out.append(f"{pre}:code:`{t}`{post}")
        last = m.end()
    out.append(re.sub(r'([*|\\])', r'\\\1', s[last:]))
    return ''.join(out)

def _fmt(v) -> str:
    if v is inspect._empty: return ''
    if isinstance(v, type): return v.__name__
    return str(v).replace('typing.', '')

def _docments_table(obj) -> list[str]:
    from fastcore.docments import docments
    try: d = docments(obj, full=True, returns=True)
    except Exception: return []
    rows = [(n, v) for n, v in d.items() if n not in ('self', 'cls') and not (n == 'return' and not v['docment'])]
    if not any(v['docment'] for n, v in rows): return []  # the signature already says all there is
    lines = ['', '.. list-table::', '   :header-rows: 1', '   :class: docments', '', '   * -', '     - Type', '     - Default', '     - Details']
    for n, v in rows:
        dflt = '' if v['default'] is inspect._empty else repr(v['default']) if not isinstance(v['default'], type) else v['default'].__name__
        cells = ['**Returns**' if n == 'return' else f'``{n}``', f'``{_fmt(v["anno"])}``' if _fmt(v['anno']) else '',
                 f'``{dflt}``' if dflt.strip() else '', _rst_inline(v['docment'] or '')]
        lines += [f'   * - {cells[0]}'] + [f'     - {c}' for c in cells[1:]]
    return lines + ['']

import functools

@functools.lru_cache(maxsize=None)
def _module_comments(mod:str) -> dict:
    "Name -> trailing `# comment` of each module-level assignment of `mod`: nbdev's way to document a constant"
    import ast, importlib, io, tokenize
    try: src = inspect.getsource(importlib.import_module(mod))
    except Exception: return {}
    comments = {t.start[0]: t.string.lstrip('#').strip() for t in tokenize.generate_tokens(io.StringIO(src).readline)
                if t.type == tokenize.COMMENT}
    res = {}
    for n in ast.parse(src).body:
        if isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if isinstance(t, ast.Name) and n.end_lineno in comments: res[t.id] = comments[n.end_lineno]
    return res

def _data_comment(name:str) -> str:
    mod, _, attr = name.rpartition('.')
    return _module_comments(mod).get(attr, '')

def _process_docstring(app, what, name, obj, options, lines):
    if what == 'data': lines[:] = [_data_comment(name)]  # not the docstring of the value's type
    lines[:] = [_rst_inline(l) for l in lines]
    if what in ('function', 'method', 'class') and callable(obj): lines.extend(_docments_table(obj))

def _find_source(app, modname): return _source_tags(modname)

@functools.lru_cache(maxsize=None)
def _source_tags(modname):
    "viewcode's source tags, plus `Cls.meth` for functions patched onto a class cell by cell (`@_patch_to(Cls)`)"
    import ast
    from sphinx.pycode import ModuleAnalyzer
    try: an = ModuleAnalyzer.for_module(modname); an.find_tags()
    except Exception: return None
    tags = dict(an.tags)
    try: tree = ast.parse(an.code)
    except SyntaxError: return an.code, tags
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):  # constants and registries documented with `py:data`
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name): tags.setdefault(t.id, ('other', node.lineno, node.end_lineno))
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
        for d in node.decorator_list:
            f = d.func if isinstance(d, ast.Call) else d
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, 'id', '')
            if not name.lstrip('_').startswith('patch'): continue
            args = node.args.posonlyargs + node.args.args
            cls = ast.unparse(d.args[0]) if isinstance(d, ast.Call) and d.args else \
                  ast.unparse(args[0].annotation) if args and args[0].annotation is not None else None
            if cls: tags[f"{cls}.{node.name}"] = ('def', node.lineno, node.end_lineno)
    return an.code, tags

def _follow_imported(app, modname, fullname):
    "Module that defines `fullname`: a function's or class's own module, else (properties, constants) the documented one"
    import importlib
    try:
        obj = importlib.import_module(modname)
        for a in fullname.split('.'): obj = inspect.getattr_static(obj, a) if isinstance(obj, type) else getattr(obj, a)
    except Exception: return modname
    if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, '__name__', '') != fullname.split('.')[-1]:
        return modname  # an alias (`EvalSettings = EvalCfg`): its source is the assignment in the documented module
    if isinstance(obj, property): obj = obj.fget
    if isinstance(obj, (staticmethod, classmethod)): obj = obj.__func__
    return (getattr(obj, '__module__', None) if inspect.isfunction(obj) or inspect.isclass(obj) else None) or modname

def setup(app):
    app.connect('viewcode-follow-imported', _follow_imported)
    app.connect('autodoc-process-docstring', _process_docstring)
    app.connect('viewcode-find-source', _find_source)
