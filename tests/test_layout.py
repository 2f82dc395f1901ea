"""The tree's shape (issue 22): every module imports alone (no import cycle) and no source file outgrows 450 lines."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ('lightflow', 'mmdet_plugin', 'lightflow_deploy')
MAX_LINES = 450
MAX_TOOL_LINES = 250  # a tool is arguments, checks and printing (issue 22: eight were 256-379 lines)

# One interpreter imports the third-party libraries once, then forks a child per project module: every child starts
# with no project module loaded, so a cycle between project modules fails its import exactly as in a fresh process,
# at a fraction of the cost (77 fresh interpreters importing mmdet take ~6 min on 2 cores; this takes ~15 s).
_FORK_IMPORTER = r'''
import importlib, os, sys, traceback, warnings
warnings.simplefilter('ignore')
for lib in ('numpy', 'cv2', 'torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet.models', 'mmdet.datasets',
            'mmdet.evaluation', 'mmdet.apis'):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not any(m.split('.')[0] in ('lightflow', 'mmdet_plugin', 'lightflow_deploy') for m in sys.modules)
failed = []
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().encode()[-2000:])
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, 'rb') as pipe:
        message = pipe.read().decode(errors='replace')
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(f'{name}: {message.strip().splitlines()[-1] if message.strip() else "crashed"}')
        sys.stderr.write(f'--- {name}\n{message}\n')
print('FAILED ' + ' | '.join(failed) if failed else 'OK')
'''


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob('*.py')):
            parts = path.relative_to(REPO).with_suffix('').parts
            names.append('.'.join(parts[:-1] if parts[-1] == '__init__' else parts))
    return names


@pytest.mark.slow  # ~12 s: one fork per module
def test_every_module_imports_alone():
    """Each module of lightflow/, mmdet_plugin/ and lightflow_deploy/ imports first, in an interpreter with no project
    module loaded (an import cycle such as models -> apis -> models only shows when the cycle's other end is
    imported first)."""
    names = _modules()
    assert len(names) > 50 and 'mmdet_plugin.apis' in names and 'lightflow.frames' in names
    out = subprocess.run([sys.executable, '-c', _FORK_IMPORTER, *names], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={**__import__('os').environ, 'PYTHONPATH': str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == 'OK', out.stdout[-2000:] + out.stderr[-4000:]


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules its module-level statements import. Importing ``a.b.c`` runs the packages ``a``
    and ``a.b`` first, so an import also reaches every package above its target that is not above the importer."""
    modules = set(_modules())
    packages = {m for m in modules if (REPO / m.replace('.', '/') / '__init__.py').exists()}
    graph: dict[str, set[str]] = {}
    for name in modules:
        is_package = name in packages
        path = REPO / (name.replace('.', '/') + ('/__init__.py' if is_package else '.py'))
        here = name if is_package else name.rpartition('.')[0]
        targets = set()
        for node in ast.parse(path.read_text(encoding='utf-8')).body:  # module level only (not inside functions)
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    anchor = here.split('.')[:len(here.split('.')) - node.level + 1]
                    base = '.'.join(anchor + ([base] if base else []))
                targets.add(base)
                targets.update(f'{base}.{a.name}' for a in node.names if f'{base}.{a.name}' in modules)
        edges = set()
        for target in targets:
            parts = target.split('.')
            for i in range(1, len(parts) + 1):
                step = '.'.join(parts[:i])
                if step in modules and step != name and not (step in packages and name.startswith(step + '.')):
                    edges.add(step)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules():
    """The module-level imports of the packages form no cycle (issue 22: ``mmdet_plugin.models`` re-exported
    ``mmdet_plugin.apis``, which imports ``mmdet_plugin.models``; it imported only because of the order)."""
    graph = _import_graph()
    assert 'mmdet_plugin.models.key_frame_policy' in graph['mmdet_plugin.models']
    assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert _cycle(graph) is None, ' -> '.join(_cycle(graph))


def test_no_source_file_over_the_line_limit():
    """No .py file of the packages and tools is over 450 lines (split by job, never by squeezing), no tool over 250."""
    over = {str(p.relative_to(REPO)): n for package in (*PACKAGES, 'tools') for p in sorted((REPO / package).rglob('*.py'))
            if (n := len(p.read_text(encoding='utf-8').splitlines())) > MAX_LINES}
    assert not over, f'over {MAX_LINES} lines: {over}'
    thick = {p.name: n for p in sorted((REPO / 'tools').glob('*.py'))
             if (n := len(p.read_text(encoding='utf-8').splitlines())) > MAX_TOOL_LINES}
    assert not thick, f'tools over {MAX_TOOL_LINES} lines (move the logic into lightflow/ or mmdet_plugin/): {thick}'


def test_tests_load_tools_one_way():
    """Tests load a tool only through conftest's ``load_tool`` fixture (issue 22: eleven test files had their own
    loaders, some registering the module for dataclasses, some not), or run it as a script in a subprocess."""
    others = sorted(str(p.relative_to(REPO)) for p in (REPO / 'tests').rglob('*.py')
                    if p.name != 'conftest.py' and 'spec_from_file_location' in p.read_text(encoding='utf-8')
                    and p.name != 'test_layout.py')
    assert not others, f'load tools with the load_tool fixture instead: {others}'


TOOL_ENTRY_POINTS = {'main', 'parse_args'}


def tool_internals_used(source: str) -> list[str]:
    """``tool.attribute`` uses in a test's ``source`` other than a tool's entry points: a tool is a name bound to
    ``load_tool(...)``, a fixture returning it, or the call itself."""
    tree = ast.parse(source)

    def is_load(node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'load_tool'

    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and is_load(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef) and any(isinstance(n, ast.Return) and n.value is not None
                                                       and is_load(n.value) for n in ast.walk(node)):
            names.add(node.name)
    return sorted(f'line {node.lineno}: {node.attr}' for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and node.attr not in TOOL_ENTRY_POINTS
                  and (is_load(node.value) or (isinstance(node.value, ast.Name) and node.value.id in names)))


def test_tests_call_tools_only_through_their_entry_points():
    """Library logic a test needs lives in an importable module, not in a tool (issue 22: tests called six tool
    helpers, e.g. ``benchmark_vid.tradeoff_series``, ``demo_video._load_detector``)."""
    assert tool_internals_used("t = load_tool('x')\nt.main([])\nt.tables(1)\nload_tool('y').FlowPanels(2)\n"
                               "def demo():\n    return load_tool('z')\ndemo.run()\n") == [
        'line 3: tables', 'line 4: FlowPanels', 'line 7: run']
    used = {str(p.relative_to(REPO)): found for p in sorted((REPO / 'tests').rglob('*.py'))
            if (found := tool_internals_used(p.read_text(encoding='utf-8')))}
    assert not used, f'move these into lightflow/ or mmdet_plugin/ and import them from there: {used}'
