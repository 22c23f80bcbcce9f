"""Shared modules name no study: in the code of the trainer, evaluation, config, records, launch, runner,
figures, CLI, registry and dist modules the words r3, vov, spatial and reasoning occur only in comments and
docstrings (documentation). A name or a string in code would be a study wired into shared code."""
import ast, io, re, tokenize
from pathlib import Path
import pytest
from conftest import ROOT

SHARED = ['train', 'eval/*', 'config', 'records', 'launch', 'runner', 'figures', 'cli', 'registry', 'dist']
STUDY_WORD = re.compile(r'(?<![a-z0-9])(r3|vov|spatial|reasoning)(?![a-z0-9])', re.I)  # `_` separates words: r3_hook counts

def shared_files() -> list[Path]:
    return sorted(p for m in SHARED for p in (ROOT/'vlm_nb').glob(f'{m}.py') if p.name != '__init__.py' or p.stat().st_size)

def docstring_starts(src:str) -> set:
    "(line, col) where each module, class and function docstring starts"
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add((first.value.lineno, first.value.col_offset))
    return out

def study_words(src:str) -> list[str]:
    "`line: token` for every study word in code (names, strings that are not docstrings), comments skipped"
    docs, hits = docstring_starts(src), []
    for t in tokenize.generate_tokens(io.StringIO(src).readline):
        if t.type == tokenize.COMMENT or (t.type == tokenize.STRING and t.start in docs): continue
        if t.type in (tokenize.NAME, tokenize.STRING) or t.type == getattr(tokenize, 'FSTRING_MIDDLE', -1):
            if STUDY_WORD.search(t.string): hits.append(f"{t.start[0]}: {t.string[:80]}")
    return hits

def test_checker_finds_names_and_strings_not_documentation():
    src = '"r3 in a module docstring"\n# vov in a comment\ndef f(x=1):  # spatial\n    "reasoning in a docstring"\n    return HOOKS.get(\'r3\'), r3_hook, vovnet\n'
    assert study_words(src) == ["5: 'r3'", '5: r3_hook']

def test_shared_files_exist():
    names = {p.stem for p in shared_files()}
    assert {'train', 'config', 'records', 'launch', 'runner', 'figures', 'cli', 'registry', 'dist', 'matrix', 'metrics'} <= names, names

@pytest.mark.parametrize('path', shared_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_module_names_no_study(path):
    hits = study_words(path.read_text())
    assert not hits, f"{path.relative_to(ROOT)} names a study in code:\n" + '\n'.join(hits)
