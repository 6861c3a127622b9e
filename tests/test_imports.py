"""The package layout: no import cycles, packages never import scripts or upward, tests stay independent.

Imports are read from the source with `ast` (function-level imports included), so a cycle hidden behind an
import inside a function is found too.
"""
import ast
import os

from tests.conftest import ROOT

SCRIPTS = {'main', 'trainLPG', 'genPseudoMasks', 'test', 'run_rounds', 'demo'}
SKIP_DIRS = {'.git', '__pycache__', '.pytest_cache', 'demo_output', '.bench', '.whl'}


def project_modules():
    """{dotted module name: path} of every Python file of the project."""
    modules = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith('.')]
        for name in files:
            if name.endswith('.py'):
                relative = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].split(os.sep)
                if relative[-1] == '__init__':
                    relative = relative[:-1]
                modules['.'.join(relative)] = os.path.join(folder, name)
    return modules


def imported_modules(name, path, modules):
    """Project modules that module `name` imports (the module named, not its parent packages)."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.') if package else []
                parts = parts[:len(parts) - (node.level - 1)]
                base = '.'.join(parts + ([node.module] if node.module else []))
            targets = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def import_graph():
    modules = project_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 'open':
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_relative_imports_resolve(tmp_path):
    graph = import_graph()
    assert 'models.deeplab_vgg' in graph['models.backbones']       # from .deeplab_vgg import ...
    assert 'datasets.boxes' in graph['utils.pseudo_masks.generator']  # from datasets.boxes import ...
    assert 'utils.pseudo_masks.compose' in graph['utils.pseudo_masks.generator']  # from .compose import ...
    assert {'datasets.io', 'datasets.constants'} <= graph['datasets.boxes']


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_packages_import_neither_scripts_nor_utils():
    """datasets/ and models/ are the bottom layers: utils/ and the scripts build on them, never the reverse."""
    bad = {}
    for name, targets in import_graph().items():
        if name.split('.')[0] in ('datasets', 'models'):
            wrong = {t for t in targets if t.split('.')[0] == 'utils' or t in SCRIPTS}
            if wrong:
                bad[name] = sorted(wrong)
    assert bad == {}


def test_utils_never_imports_the_scripts():
    """The scripts build on utils/, never the reverse: the steps of run_rounds.py (utils/rounds.py) are settings
    that utils/step_runner.py turns into argv through the script it runs."""
    bad = {name: sorted(t for t in targets if t in SCRIPTS)
           for name, targets in import_graph().items() if name.split('.')[0] == 'utils'}
    assert {name: targets for name, targets in bad.items() if targets} == {}


def test_test_modules_do_not_import_each_other():
    bad = {name: sorted(t for t in targets if t.startswith('tests.test_'))
           for name, targets in import_graph().items() if name.startswith('tests.')}
    assert {name: targets for name, targets in bad.items() if targets} == {}


def test_the_engine_stands_below_the_method_and_evaluation():
    """utils/engine/ (flags, precision, processes, records, checkpoints, the training loop) knows nothing of the
    method's pieces, of evaluation or of the release's command-line tools."""
    bad = {}
    for name, targets in import_graph().items():
        if name.startswith('utils.engine'):
            wrong = {t for t in targets if t.startswith('utils.') and not t.startswith('utils.engine')}
            if wrong:
                bad[name] = sorted(wrong)
    assert bad == {}


def test_the_release_path_of_the_metric_is_the_evaluation_metric():
    import utils.evaluation.metric as metric
    import utils.metric as release_path
    assert (release_path.scores, release_path.confusion_matrix, release_path.scores_from_confusion) == \
        (metric.scores, metric.confusion_matrix, metric.scores_from_confusion)
