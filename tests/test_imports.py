"""The package layout: no import cycles, packages never import scripts or upward, tests stay independent.

Imports are read from the source with `ast` (function-level imports included), so a cycle hidden behind an
import inside a function is found too; so are importlib.import_module and __import__ calls, whose module must be
named by a literal (a computed name could hide any import from these checks).
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


def dynamic_imports(tree):
    """The modules that importlib.import_module(...) and __import__(...) calls in `tree` import: the literal name,
    or None where the name is computed."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, 'id', None)
            if called in ('import_module', '__import__'):
                argument = node.args[0]
                literal = isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                names.append(argument.value if literal else None)
    return names


def imported_modules(name, path, modules):
    """Project modules that module `name` imports (the module named, not its parent packages), dynamic imports
    of a literal name included."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    found = {target for target in dynamic_imports(tree) if target in modules}
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


def test_dynamic_imports_are_seen():
    tree = ast.parse('import importlib\nimportlib.import_module("main")\n__import__("utils.rounds")\n'
                     'importlib.import_module(name[:-3])\n')
    assert dynamic_imports(tree) == ['main', 'utils.rounds', None]


def test_no_module_imports_a_computed_name():
    """A module named only at run time could be a script or an upper layer: every dynamic import is a literal."""
    computed = sorted(name for name, path in project_modules().items()
                      if None in dynamic_imports(ast.parse(open(path).read(), path)))
    assert computed == []


def test_relative_imports_resolve(tmp_path):
    graph = import_graph()
    assert 'models.deeplab_vgg' in graph['models.backbones']       # from .deeplab_vgg import ...
    assert 'datasets.boxes' in graph['utils.pseudo_masks.generator']  # from datasets.boxes import ...
    assert 'utils.pseudo_masks.compose' in graph['utils.pseudo_masks.generator']  # from .compose import ...
    assert {'datasets.io', 'datasets.constants'} <= graph['datasets.boxes']


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def layer(module):
    """The layer a project module belongs to: 'engine' (utils/engine, the bottom), 'datasets', 'models', 'utils'
    (the method's and evaluation's pieces), 'script', or 'other' (tests, benchmarks)."""
    if module.startswith('utils.engine'):
        return 'engine'
    top = module.split('.')[0]
    if module in SCRIPTS:
        return 'script'
    return top if top in ('datasets', 'models', 'utils') else 'other'


# What each layer may import, besides itself: the engine nothing; data formats the engine; networks the engine and
# the data constants (the BGR mean of the ImageNet weights); the method's pieces all three.
MAY_IMPORT = {'engine': set(), 'datasets': {'engine'}, 'models': {'engine', 'datasets'},
              'utils': {'engine', 'datasets', 'models'}}


def layering_violations(graph):
    """{module: [modules it imports against MAY_IMPORT]}."""
    bad = {}
    for name, targets in graph.items():
        allowed = MAY_IMPORT.get(layer(name))
        if allowed is None:
            continue
        wrong = sorted(t for t in targets if layer(t) != layer(name) and layer(t) not in allowed)
        if wrong:
            bad[name] = wrong
    return bad


def test_the_layering_check_finds_an_upward_import():
    graph = {'utils.engine.files': {'datasets.io'}, 'datasets.io': {'utils.engine.files', 'models.lpg'},
             'models.lpg': {'utils.engine.flags'}, 'utils.rounds': {'utils.engine.layout', 'main'}}
    assert layering_violations(graph) == {'utils.engine.files': ['datasets.io'], 'datasets.io': ['models.lpg'],
                                          'utils.rounds': ['main']}


def test_each_layer_imports_only_the_layers_below_it():
    """utils/engine is the ground floor (errors, files, flags, the training loop); datasets/ (data formats) stands
    on it, models/ (networks) on both; the method's pieces and evaluation (the rest of utils/) on those three; the
    scripts on everything, never the reverse."""
    assert layering_violations(import_graph()) == {}


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


def test_the_release_path_of_the_metric_is_the_evaluation_metric():
    import utils.evaluation.metric as metric
    import utils.metric as release_path
    assert (release_path.scores, release_path.confusion_matrix, release_path.scores_from_confusion) == \
        (metric.scores, metric.confusion_matrix, metric.scores_from_confusion)
