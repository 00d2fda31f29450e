"""A small mutation tester (mutmut is not a dependency): flip one operator or numeric constant of a source file at a
time, run the tests that cover the file, and count the mutants the tests kill.

Mutations (one per mutant, chosen by walking the file's AST):
  arithmetic   + <-> -,  * <-> /,  // -> /,  % -> //,  ** -> *   (also in augmented assignments: += -> -= ...)
  comparison   < <-> <=,  > <-> >=,  == <-> !=,  is <-> is not,  in <-> not in
  boolean      and <-> or,  `not x` -> x,  `-x` -> x (not on a literal: -1 is a number)
  constants    an int n -> n + 1, a float x -> x + 1, so -1 -> -2 (True/False and strings are left alone)
Default values of parameters and everything inside docstrings / type annotations are not mutated (they are
configuration or documentation, not arithmetic).

The mutants run in a private copy of the repository (prefswift/ and tests/ copied to a temporary directory), so the
working tree is never touched, even if the run is interrupted. A mutant is killed when the tests fail (or time out);
it survives when they pass. Each test run is a fork of one process that has imported torch, transformers and TRL
already (so a mutant costs only its tests). With `--lock FILE` the run holds an exclusive flock on FILE from the
first test run to the last.

    python scripts/mutation.py --max 40 --seed 0 prefswift/algorithms/dpo.py -- tests/test_losses.py -k "not slow"
"""
from __future__ import annotations

import argparse
import ast
import fcntl
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
BOOL_SWAP = {ast.And: ast.Or, ast.Or: ast.And}


def _skipped_nodes(tree: ast.AST) -> set:
    """ids of the nodes never mutated: parameter defaults, annotations, docstrings."""
    skip = set()

    def all_ids(node):
        return {id(n) for n in ast.walk(node)}

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                skip |= all_ids(default)
            for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if arg.annotation is not None:
                    skip |= all_ids(arg.annotation)
            if getattr(node, "returns", None) is not None:
                skip |= all_ids(node.returns)
        if isinstance(node, ast.AnnAssign):
            skip |= all_ids(node.annotation)
            if node.value is not None and isinstance(node.target, ast.Name):  # dataclass field defaults
                skip |= all_ids(node.value)
    return skip


def mutation_points(tree: ast.AST, source: str = "") -> list:
    """[(node index in ast.walk order, kind, k, description)] of every possible single mutation."""
    skip = _skipped_nodes(tree)
    points = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        code = " ".join((ast.get_source_segment(source, node) or "").split())
        line = f"{getattr(node, 'lineno', '?')} `{code[:60]}`"
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOP_SWAP:
            points.append((index, "op", 0, f"line {line}: {type(node.op).__name__} -> "
                                            f"{BINOP_SWAP[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in CMP_SWAP:
                    points.append((index, "cmp", k, f"line {line}: {type(op).__name__} -> "
                                                    f"{CMP_SWAP[type(op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            points.append((index, "bool", 0, f"line {line}: {type(node.op).__name__} -> "
                                             f"{BOOL_SWAP[type(node.op)].__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)) and not (
                isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)):  # -1 is a literal
            points.append((index, "unary", 0, f"line {line}: drop {type(node.op).__name__}"))
        elif (isinstance(node, ast.Constant) and type(node.value) in (int, float)):
            points.append((index, "const", 0, f"line {line}: {node.value!r} -> {node.value + 1!r}"))
    return points


class _Apply(ast.NodeTransformer):
    def __init__(self, target_index: int, kind: str, k: int, order: dict):
        self.target, self.kind, self.k, self.order = target_index, kind, k, order

    def generic_visit(self, node):
        node = super().generic_visit(node)
        if self.order.get(id(node)) != self.target:
            return node
        if self.kind == "op":
            node.op = BINOP_SWAP[type(node.op)]()
        elif self.kind == "cmp":
            node.ops[self.k] = CMP_SWAP[type(node.ops[self.k])]()
        elif self.kind == "bool":
            node.op = BOOL_SWAP[type(node.op)]()
        elif self.kind == "unary":
            return node.operand
        elif self.kind == "const":
            node.value = node.value + 1
        return node


def mutate(source: str, point) -> str:
    tree = ast.parse(source)
    order = {id(n): i for i, n in enumerate(ast.walk(tree))}
    index, kind, k, _ = point
    mutated = _Apply(index, kind, k, order).visit(tree)
    ast.fix_missing_locations(mutated)
    return ast.unparse(mutated)


def _preimport():
    """Import the heavy libraries once in this process; every test run is a fork of it that imports prefswift (the
    mutated copy) and the tests afresh, so a mutant costs its tests, not torch's start-up."""
    import pytest  # noqa: F401
    import torch  # noqa: F401

    for name in ("transformers", "peft", "trl", "datasets", "accelerate"):
        try:
            __import__(name)
        except ImportError:
            pass
    assert not any(m == "prefswift" or m.startswith("prefswift.") for m in sys.modules)


def _run_tests(work: Path, tests, timeout: int) -> object:
    """pytest -x on `tests` in a forked child (cwd and import path: the private copy); its exit code, or
    'timeout'."""
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(work)
            sys.path.insert(0, str(work))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest

            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests])
        except BaseException:
            code = 99
        os._exit(int(code))
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the file to mutate, relative to the repository root")
    parser.add_argument("tests", nargs=argparse.REMAINDER, help="after --: pytest arguments selecting the covering "
                        "tests")
    parser.add_argument("--max", type=int, default=40, help="sample at most this many mutants (fixed seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per mutant's test run (a timeout kills)")
    parser.add_argument("--lock", default=None, help="hold an exclusive flock on LOCK while the tests run")
    args = parser.parse_args(argv)
    args.tests = args.tests[1:] if args.tests[:1] == ["--"] else args.tests
    if not args.tests:
        parser.error("name the covering tests after --")

    root = Path(__file__).resolve().parent.parent
    original = (root / args.source).read_text()
    points = mutation_points(ast.parse(original), original)
    baseline = ast.unparse(ast.parse(original))
    rng = random.Random(args.seed)
    sample = sorted(rng.sample(range(len(points)), min(args.max, len(points))))
    work = Path(tempfile.mkdtemp(prefix="prefswift-mutation-"))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # interrupted: still remove the private copy
    try:
        for part in ("prefswift", "tests", "setup.py"):
            src = root / part
            if src.is_dir():
                shutil.copytree(src, work / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.exists():
                shutil.copy(src, work / part)
        target = work / args.source
        os.environ.update(PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                          HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                          PREFSWIFT_HOME=os.environ.get("PREFSWIFT_HOME", str(root / ".cache" / "prefswift")))
        sys.dont_write_bytecode = True
        _preimport()
        if args.lock:  # one file's whole run holds the lock: a few minutes, with no wait between mutants
            lock_fd = os.open(args.lock, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        # the unmutated file first: the covering tests must pass on it, else every mutant would look killed
        target.write_text(baseline)
        t0 = time.time()
        rc = _run_tests(work, args.tests, args.timeout * 2)
        if rc != 0:
            print(f"{args.source}: the covering tests fail on the unmutated file (rc {rc}); no score", flush=True)
            return 1
        print(f"{args.source}: {len(points)} mutation points, running {len(sample)} "
              f"(baseline run {time.time() - t0:.0f}s)", flush=True)
        killed, survived = 0, []
        for n, i in enumerate(sample, 1):
            mutant = mutate(original, points[i])
            if mutant == baseline:
                continue
            target.write_text(mutant)
            rc = _run_tests(work, args.tests, args.timeout)
            if rc == 0:
                survived.append(points[i][3])
                print(f"  [{n}/{len(sample)}] SURVIVED {points[i][3]}", flush=True)
            else:
                killed += 1
                print(f"  [{n}/{len(sample)}] killed   {points[i][3]} (rc {rc})", flush=True)
            target.write_text(baseline)
        total = killed + len(survived)
        print(f"{args.source}: killed {killed}/{total} ({100 * killed / max(total, 1):.0f}%), "
              f"survived {len(survived)}", flush=True)
        for s in survived:
            print(f"  survivor: {s}", flush=True)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
