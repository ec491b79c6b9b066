"""Program of thought: run an untrusted Python program and read its numeric answer.

``run_program(code)`` returns a :class:`ProgramResult`. The answer is ``ans`` after the run or,
when the program sets no ``ans`` but defines ``solution()`` (PAL style), what ``solution()``
returns. Three walls stand between the program and the machine:

1. a static check in the parent (:func:`check_program`): the source is parsed with :mod:`ast`
   (parsing is not execution) and rejected, with the line number, for imports outside
   :data:`ALLOWED_MODULES`, dunder names, private or frame-walking attributes, the names in
   :data:`FORBIDDEN_NAMES`, class definitions, or size over :data:`MAX_SOURCE_BYTES`;
2. in a sandbox worker the code runs in a fresh namespace whose ``__builtins__`` hold only
   harmless functions, types and exceptions, and whose ``__import__`` hands out fresh copies of
   the allowed modules holding just :data:`MODULE_EXPORTS` (``fractions.sys`` is not there);
   shared state the program could reach (the decimal context, library classes) is reset after
   every run, so one program cannot change the next one's results;
3. the worker's confinement (an unprivileged user, rlimits, Landlock, a seccomp filter) and the
   parent's wall-clock kill (:mod:`eotd.sandbox`).
"""

from __future__ import annotations

import ast
import builtins
import decimal
import importlib
import math
import numbers
import types
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from eotd.sandbox import run_in_sandbox

MAX_SOURCE_BYTES = 20_000
"""Programs longer than this (UTF-8 bytes) are rejected unread; real PoT programs are < 2 KB."""
MEMORY_MB = 256
"""Address space a program may allocate on top of the warm worker."""
FILENAME = "<program>"
MAX_VALUES = 64
"""The most final variables a run reports (the first ones the program assigned)."""

ALLOWED_MODULES = {
    "math": "floor, ceil, sqrt, gcd, comb: the everyday arithmetic of word problems",
    "fractions": "exact rational arithmetic (Fraction) for shares and ratios",
    "decimal": "exact decimal money arithmetic; the context is reset before every run",
    "statistics": "mean, median, mode of a list of numbers",
    "itertools": "combinations and permutations for counting problems",
    "functools": "reduce and lru_cache for recursive counting",
    "datetime": "date and time differences (days between dates, durations)",
}
"""Importable modules and why. SymPy is deliberately absent: ``sympify`` is ``eval``."""

MODULE_EXPORTS: dict[str, tuple[str, ...] | None] = {
    "math": None,
    "itertools": None,
    "fractions": ("Fraction",),
    "decimal": (
        *("Decimal", "Context", "getcontext", "localcontext", "DecimalException"),
        *("InvalidOperation", "DivisionByZero", "Inexact", "Rounded", "Overflow", "Underflow"),
        *("ROUND_UP", "ROUND_DOWN", "ROUND_CEILING", "ROUND_FLOOR", "ROUND_HALF_UP"),
        *("ROUND_HALF_DOWN", "ROUND_HALF_EVEN", "ROUND_05UP"),
    ),
    "statistics": (
        *("mean", "fmean", "geometric_mean", "harmonic_mean", "median", "median_low"),
        *("median_high", "median_grouped", "mode", "multimode", "quantiles", "pstdev"),
        *("pvariance", "stdev", "variance", "covariance", "correlation", "linear_regression"),
        *("NormalDist", "StatisticsError"),
    ),
    "functools": ("reduce", "lru_cache", "cache", "partial", "cmp_to_key"),
    "datetime": (
        *("date", "datetime", "time", "timedelta", "timezone", "tzinfo", "MINYEAR", "MAXYEAR"),
    ),
}
"""What a program sees of each module: ``None`` is every public attribute that is not a module
(math and itertools are C modules of pure functions), else exactly the names listed. Listing
matters: ``functools.update_wrapper(f, g, updated=("__globals__",))`` would copy a library
function's globals (``sys`` among them) into the program's namespace; ``statistics`` re-exports
helpers it imports; ``decimal.DefaultContext`` is shared state that outlives a run."""

FORBIDDEN_NAMES = frozenset(
    {
        *("eval", "exec", "compile", "open", "input", "globals", "locals", "vars", "getattr"),
        *("setattr", "delattr", "breakpoint", "help", "memoryview", "__builtins__", "exit"),
        *("quit", "__import__", "type", "object", "super", "dir"),
    }
)
"""Names rejected outright: code execution, introspection and I/O entry points."""

FORBIDDEN_ATTRIBUTES = frozenset(
    {
        *("format", "format_map", "mro", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame"),
        *("cr_code", "cr_await", "ag_frame", "ag_code", "ag_await", "f_globals", "f_locals"),
        *("f_back", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next"),
    }
)
"""Attributes rejected besides every name starting with ``_``: frame and code walking, and
``str.format``, whose ``{0.attr}`` fields read attributes the static check cannot see."""

_SAFE_BUILTIN_NAMES = [
    *("abs", "min", "max", "sum", "round", "int", "float", "len", "range", "list", "dict", "set"),
    *("tuple", "sorted", "enumerate", "zip", "map", "filter", "divmod", "pow", "str", "bool"),
    *("print", "isinstance", "any", "all", "reversed"),
    # useful and harmless extras: pure functions and immutable types
    *("frozenset", "complex", "chr", "ord", "hex", "bin", "oct", "next", "iter", "slice", "hash"),
    *("callable", "repr", "ascii", "True", "False", "None", "NotImplemented", "Ellipsis"),
    # so that programs can raise and catch the everyday errors
    *("Exception", "ArithmeticError", "ZeroDivisionError", "OverflowError", "ValueError"),
    *("TypeError", "KeyError", "IndexError", "LookupError", "StopIteration", "AssertionError"),
    *("RuntimeError", "NameError"),
]

STATUSES = (
    "ok",
    "syntax_error",
    "forbidden",
    "runtime_error",
    "timeout",
    "memory_error",
    "no_answer",
    "unavailable",
)


@dataclass
class ProgramResult:
    """The outcome of one program run.

    ``status`` is one of :data:`STATUSES`; ``answer`` is the float answer when ``ok``; ``error`` a
    sentence naming the problem (and its line when known, also in ``line``, 1-based);
    ``stdout`` what the program printed (capped); ``values`` the program's final numeric
    variables (at most :data:`MAX_VALUES`, for comparing with an EoT's). ``unavailable``: the
    sandbox did not run the program (all workers busy, or not confined as required); ``error``
    says which.
    """

    status: str
    answer: float | None = None
    error: str | None = None
    stdout: str = ""
    line: int | None = None
    values: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Static check (parent).


def _identifiers(node: ast.AST) -> list[tuple[str, str]]:
    """The identifiers a node introduces or uses, as (kind, name) pairs."""
    found: list[tuple[str, str | None]] = []
    if isinstance(node, ast.Name):
        found.append(("name", node.id))
    elif isinstance(node, ast.Attribute):
        found.append(("attribute", node.attr))
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        found.append(("name", node.name))
    elif isinstance(node, ast.arg | ast.keyword):
        found.append(("name", node.arg))
    elif isinstance(node, ast.alias):
        found.append(("name", node.asname))
    elif isinstance(node, ast.Global | ast.Nonlocal):
        found.extend(("name", name) for name in node.names)
    elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
        found.append(("name", node.name))
    elif isinstance(node, ast.MatchMapping):
        found.append(("name", node.rest))
    elif isinstance(node, ast.MatchClass):  # `case C(attr=...)` reads attributes by name
        found.extend(("attribute", name) for name in node.kwd_attrs)
    return [(kind, unicodedata.normalize("NFKC", name)) for kind, name in found if name]


def _import_violation(node: ast.Import | ast.ImportFrom) -> str | None:
    if isinstance(node, ast.ImportFrom):
        modules, imported = [node.module or ""], [alias.name for alias in node.names]
    else:
        modules, imported = [alias.name for alias in node.names], []
    modules = [unicodedata.normalize("NFKC", module) for module in modules]
    for module in modules:
        if getattr(node, "level", 0) or module not in ALLOWED_MODULES:
            allowed = ", ".join(sorted(ALLOWED_MODULES))
            return f"import of '{module or '.'}' is not allowed (allowed: {allowed})"
    for name in imported:
        exports = MODULE_EXPORTS[modules[0]]
        if name.startswith("_"):
            return f"importing the private name '{name}' is not allowed"
        if exports and name != "*" and name not in exports:
            return f"'{name}' is not available from {modules[0]} (available: {', '.join(exports)})"
    return None


def _violation(node: ast.AST) -> str | None:
    """Why ``node`` is not allowed, or None."""
    if isinstance(node, ast.ClassDef):
        return "class definitions are not allowed"
    if isinstance(node, ast.Import | ast.ImportFrom):
        return _import_violation(node)
    for kind, name in _identifiers(node):
        if name.startswith("__") and name.endswith("__") and name != "__name__":
            return f"the dunder {kind} '{name}' is not allowed"
        if kind == "name" and name in FORBIDDEN_NAMES:
            return f"'{name}' is not allowed"
        if kind == "attribute" and (name.startswith("_") or name in FORBIDDEN_ATTRIBUTES):
            return f"access to the attribute '.{name}' is not allowed"
    return None


def check_program(code: str) -> ProgramResult | None:
    """Statically check ``code``: None if it may run, else the failing result (not run)."""
    size = len(code.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        return ProgramResult(
            "forbidden", error=f"the program is {size} bytes; the limit is {MAX_SOURCE_BYTES}"
        )
    try:
        tree = ast.parse(code, FILENAME)
    except SyntaxError as exc:
        return _syntax_error(exc)
    except (RecursionError, MemoryError):
        return ProgramResult("syntax_error", error="the program is nested too deeply to parse")
    except ValueError as exc:  # e.g. null bytes
        return ProgramResult("syntax_error", error=f"the program cannot be parsed: {exc}")
    violations = [  # ast.walk is iterative, so deep trees are fine
        (getattr(node, "lineno", 0), _end(node), reason)
        for node in ast.walk(tree)
        if (reason := _violation(node))
    ]
    if violations:
        line, _, reason = min(violations)  # the first to end, in reading order
        return ProgramResult("forbidden", error=f"line {line}: {reason}", line=line)
    return None


def _end(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "end_lineno", None) or 0, getattr(node, "end_col_offset", None) or 0


def _syntax_error(exc: SyntaxError) -> ProgramResult:
    line = exc.lineno
    where = f"line {line}: " if line else ""
    return ProgramResult("syntax_error", error=f"{where}{type(exc).__name__}: {exc.msg}", line=line)


# ----------------------------------------------------------------------------------------------
# Execution (worker).

_module_cache: dict[str, dict[str, Any]] = {}
_class_snapshots: list[tuple[type, dict[str, Any]]] = []


def _public_attributes(name: str) -> dict[str, Any]:
    """The attributes a program sees on module ``name`` (see :data:`MODULE_EXPORTS`)."""
    if name not in _module_cache:
        module = importlib.import_module(name)
        names = MODULE_EXPORTS[name] or [key for key in vars(module) if not key.startswith("_")]
        values = {key: getattr(module, key) for key in names}
        _module_cache[name] = {
            key: value for key, value in values.items() if not isinstance(value, types.ModuleType)
        }
    return _module_cache[name]


def _snapshot_classes() -> None:
    """Remember the Python-level classes programs can reach, to undo any tampering after a run."""
    for name in ALLOWED_MODULES:
        for value in _public_attributes(name).values():
            if isinstance(value, type) and not value.__flags__ & (1 << 8):  # not immutable
                _class_snapshots.append((value, dict(vars(value))))


def _restore_classes() -> None:
    for cls, saved in _class_snapshots:
        current = vars(cls)
        if current == saved:
            continue
        for key in [k for k in current if k not in saved]:
            delattr(cls, key)
        for key, value in saved.items():
            if current.get(key) is not value and key not in ("__dict__", "__weakref__"):
                setattr(cls, key, value)


def _restricted_import(
    name: str,
    globals: Any = None,  # the signature of __import__
    locals: Any = None,
    fromlist: Any = (),
    level: int = 0,
) -> types.ModuleType:
    """``__import__`` for programs: a fresh copy of an allowed module's public attributes."""
    if level or name not in ALLOWED_MODULES:
        raise ImportError(f"import of '{name}' is not allowed")
    module = types.ModuleType(name)
    vars(module).update(_public_attributes(name))
    return module


def _safe_builtins() -> dict[str, Any]:
    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
    safe["__import__"] = _restricted_import
    return safe


def _program_line(exc: BaseException) -> int | None:
    """The line of the program's own code where ``exc`` was raised (innermost)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _to_number(value: Any, what: str) -> tuple[str, float | None, str | None]:
    """Turn the program's answer into a float, or explain why it is not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | decimal.Decimal):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return "no_answer", None, f"{what} is {type(value).__name__} {shown}, not a number"
    try:
        number = float(value)
    except OverflowError:
        return "no_answer", None, f"{what} is too large to be a float"
    except (ValueError, ArithmeticError):  # e.g. Decimal('sNaN')
        number = math.nan
    if not math.isfinite(number):
        return "no_answer", None, f"{what} is {number}, not a finite number"
    return "ok", number, None


def _numeric_values(namespace: dict[str, Any]) -> dict[str, float]:
    """The program's public variables that hold a finite real number, as floats."""
    values: dict[str, float] = {}
    for name, value in namespace.items():
        if len(values) >= MAX_VALUES:
            break
        if name.startswith("_") or isinstance(value, bool):
            continue
        if isinstance(value, numbers.Real | decimal.Decimal):
            try:
                number = float(value)
            except (OverflowError, ValueError, ArithmeticError):
                continue
            if math.isfinite(number):
                values[name] = number
    return values


def execute_program(
    code: str,
) -> tuple[str, float | None, str | None, int | None, dict[str, float]]:
    """Run ``code`` here and now (call it through the sandbox only) and read its answer.

    Returns ``(status, answer, error, line, values)``. Safe to call on code that skipped
    :func:`check_program`: the restricted builtins and import still apply.
    """
    try:
        compiled = compile(code, FILENAME, "exec")
    except SyntaxError as exc:
        result = _syntax_error(exc)
        return result.status, None, result.error, result.line, {}
    except (RecursionError, MemoryError, ValueError):
        return "syntax_error", None, "the program cannot be compiled", None, {}
    if not _class_snapshots:
        _snapshot_classes()
    namespace: dict[str, Any] = {"__builtins__": _safe_builtins(), "__name__": "__main__"}
    decimal.setcontext(decimal.Context())
    try:
        exec(compiled, namespace)
        if "ans" in namespace:
            what, value = "ans", namespace["ans"]
        elif callable(namespace.get("solution")):
            what, value = "solution()", namespace["solution"]()
        else:
            error = "the program neither sets `ans` nor defines solution()"
            return "no_answer", None, error, None, _numeric_values(namespace)
    except MemoryError as exc:
        line = _program_line(exc)
        return "memory_error", None, _located("the program ran out of memory", line), line, {}
    except BaseException as exc:
        line = _program_line(exc)
        return "runtime_error", None, _located(_exception_text(exc), line), line, {}
    finally:
        _restore_classes()
    status, answer, error = _to_number(value, what)
    return status, answer, error, None, _numeric_values(namespace)


def _exception_text(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = ""
    message = message if len(message) <= 300 else message[:297] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _located(message: str, line: int | None) -> str:
    return f"{message} (line {line})" if line else message


def run_program(code: str, timeout: float = 5.0) -> ProgramResult:
    """Check ``code`` statically, run it in the sandbox, and return its numeric answer."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    rejected = check_program(code)
    if rejected is not None:
        return rejected
    outcome = run_in_sandbox(execute_program, code, timeout=timeout, memory_mb=MEMORY_MB)
    if outcome.status == "ok":
        status, answer, error, line, values = outcome.value
        return ProgramResult(status, answer, error, outcome.stdout, line, values)
    if outcome.status == "timeout":
        error = f"the program did not finish within {timeout:g} s (an endless loop?)"
        return ProgramResult("timeout", error=error, stdout=outcome.stdout)
    if outcome.status == "memory_error":
        error = f"the program ran out of memory ({MEMORY_MB} MB)"
        return ProgramResult("memory_error", error=error, stdout=outcome.stdout)
    if outcome.status in ("busy", "refused"):
        return ProgramResult("unavailable", error=outcome.error)
    return ProgramResult("runtime_error", error=outcome.error, stdout=outcome.stdout)
