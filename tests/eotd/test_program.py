"""Program of thought: answers, every status, and hostile programs, run in real sandbox workers."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eotd import sandbox
from eotd.program import MAX_SOURCE_BYTES, MAX_VALUES, STATUSES, execute_program, run_program
from eotd.sandbox import run_in_sandbox

MARGIN = 3.0  # seconds of slack on a shared, busy 2-core machine


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    sandbox.warm_up()
    yield


def run(code: str, timeout: float = 10.0):
    """Run a program that must finish (the generous timeout only guards a loaded machine)."""
    return run_program(code, timeout=timeout)


# Answers. ------------------------------------------------------------------------------------


def test_ans_is_the_answer_and_print_is_captured():
    code = "eggs = 16\neaten = 3\nbaked = 4\nleft = eggs - eaten - baked\nprint(left)\n"
    code += "ans = left * 2\n"
    result = run(code)
    assert result.ok and result.status == "ok"
    assert result.answer == 18.0
    assert result.stdout == "9\n"
    assert result.error is None and result.line is None
    assert result.to_dict() == {
        "status": "ok",
        "answer": 18.0,
        "error": None,
        "stdout": "9\n",
        "line": None,
        "values": {"eggs": 16.0, "eaten": 3.0, "baked": 4.0, "left": 9.0, "ans": 18.0},
    }


def test_final_numeric_variables_are_reported_and_nothing_else():
    code = (
        "from fractions import Fraction\nfrom decimal import Decimal\nshare = Fraction(1, 4)\n"
        "price = Decimal('2.50')\nflag = True\nnames = [1, 2]\n_hidden = 5\nhuge = 10 ** 400\n"
        "ans = share * 8\n"
    )
    assert run(code).values == {"share": 0.25, "price": 2.5, "ans": 2.0}
    many = "".join(f"v{i} = {i}\n" for i in range(MAX_VALUES + 10)) + "ans = 1\n"
    values = run(many).values
    assert len(values) == MAX_VALUES and values["v0"] == 0.0  # the first ones assigned
    assert run("x = 2\nans = 1 / 0\n").values == {}  # a failed run reports none


def test_solution_function_pal_style():
    code = "def solution():\n    apples = 10\n    eaten = 4\n    return apples / eaten\n"
    assert run(code).answer == 2.5


def test_ans_wins_over_solution_so_solution_runs_once():
    code = "def solution():\n    print('called')\n    return 7\nans = solution()\n"
    result = run(code)
    assert (result.answer, result.stdout) == (7.0, "called\n")


def test_main_guard_runs():
    code = "def solution():\n    return 7\nif __name__ == '__main__':\n    print(solution())\n"
    assert (run(code).answer, run(code).stdout) == (7.0, "7\n")


@pytest.mark.parametrize(
    ("code", "answer"),
    [
        ("import math\nans = math.floor(math.sqrt(17))", 4.0),
        ("from fractions import Fraction\nans = Fraction(1, 3) + Fraction(1, 6)", 0.5),
        ("from decimal import Decimal\nans = Decimal('0.10') * 3", 0.3),
        ("import statistics\nans = statistics.median([3, 1, 4, 1, 5])", 3.0),
        ("import itertools\nans = len(list(itertools.combinations(range(5), 2)))", 10.0),
        ("import functools\nans = functools.reduce(lambda a, b: a * b, [1, 2, 3, 4])", 24.0),
        ("import datetime as dt\nans = (dt.date(2024, 3, 1) - dt.date(2024, 2, 1)).days", 29.0),
        ("from math import *\nans = ceil(2.1)", 3.0),
        ("ans = 7 // 2", 3.0),
        ("ans = -1.5e3", -1500.0),
    ],
)
def test_allowed_modules_and_number_types(code, answer):
    result = run(code)
    assert result.status == "ok", result.error
    assert result.answer == pytest.approx(answer)


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("ans = '18'", "ans is str '18', not a number"),
        ("ans = [1, 2]", "ans is list"),
        ("ans = None", "ans is NoneType"),
        ("ans = True", "ans is bool"),
        ("ans = float('nan')", "not a finite number"),
        ("ans = float('inf')", "not a finite number"),
        ("ans = 10 ** 400", "too large"),
        ("ans = 1 + 2j", "ans is complex"),
        ("from decimal import Decimal\nans = Decimal('sNaN')", "not a finite number"),
        ("x = 5", "neither sets `ans` nor defines solution()"),
        ("def solution():\n    x = 1\n", "solution() is NoneType"),
    ],
)
def test_non_numeric_answers_are_no_answer(code, fragment):
    result = run(code)
    assert result.status == "no_answer"
    assert result.answer is None
    assert fragment in result.error


# Each failure status. ------------------------------------------------------------------------


def test_syntax_error_names_the_line():
    result = run("a = 1\nb = 2\nans = (a +\n")
    assert result.status == "syntax_error"
    assert result.line == 3
    assert result.error.startswith("line 3: SyntaxError:")


def test_compiler_only_syntax_errors_are_caught_statically():
    assert run("x = 1\nreturn x").status == "syntax_error"


def test_runtime_error_names_exception_and_line():
    result = run("a = 10\nb = 0\nc = 2\nans = a / b\n")
    assert result.status == "runtime_error"
    assert result.error == "ZeroDivisionError: division by zero (line 4)"
    assert result.line == 4


def test_runtime_error_inside_solution_points_at_the_failing_line():
    result = run("def solution():\n    items = [1, 2]\n    return items[5]\n")
    assert result.status == "runtime_error"
    assert result.error == "IndexError: list index out of range (line 3)"


def test_recursion_bomb_is_a_runtime_error():
    result = run("def f():\n    return f()\nans = f()\n")
    assert result.status == "runtime_error"
    assert result.error.startswith("RecursionError")
    assert result.line == 2


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass\n",
        "ans = 9**9**9**9\n",
        "import math\nans = math.factorial(10**7)\n",
        # a worker killed while it holds a million nested tuples must not delay the answer
        "t = ()\nfor _ in range(10**6):\n    t = (t,)\nwhile True:\n    pass\n",
    ],
)
def test_endless_work_times_out_quickly(code):
    started = time.monotonic()
    result = run_program(code, timeout=0.5)
    assert result.status in {"timeout", "memory_error"}
    assert "0.5 s" in result.error or "memory" in result.error
    assert time.monotonic() - started < 0.5 + MARGIN


@pytest.mark.parametrize(
    "code", ["x = [0] * 10**10\n", "x = 'a' * 10**10\n", "x = list(range(10**9))\n"]
)
def test_memory_bombs_are_memory_errors(code):
    result = run(code)
    assert result.status == "memory_error"
    assert "out of memory" in result.error


def test_printing_forever_is_capped_and_times_out():
    result = run_program("while True:\n    print('spam')\n", timeout=0.5)
    assert result.status == "timeout"


# Hostile programs: the static check. ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import os", "line 1: import of 'os' is not allowed"),
        ("x = 1\nimport math\nimport subprocess", "line 3: import of 'subprocess' is not allowed"),
        ("from os import path", "import of 'os' is not allowed"),
        ("import os.path", "import of 'os.path' is not allowed"),
        ("from . import x", "import of '.' is not allowed"),
        ("from math import _private", "private name '_private'"),
        ("import sympy", "import of 'sympy' is not allowed"),
        ("__import__('os')", "dunder name '__import__'"),
        ("ans = ().__class__.__bases__[0].__subclasses__()", "dunder attribute"),
        ("f = lambda: 1\nans = f.__globals__", "line 2: the dunder attribute '__globals__'"),
        ("ans = len(open('/etc/passwd').read())", "'open' is not allowed"),
        ("exec('ans = 1')", "'exec' is not allowed"),
        ("ans = eval('1 + 1')", "'eval' is not allowed"),
        ("ans = getattr(1, 'real')", "'getattr' is not allowed"),
        ("b = __builtins__", "'__builtins__'"),
        ("ans = (x for x in [1]).gi_frame.f_back", "'.gi_frame'"),
        ("ans = '{0.__class__}'.format(1)", "'.format'"),
        ("import fractions\nans = fractions.Fraction._from_coprime_ints", "'._from_coprime_ints'"),
        ("class A:\n    pass", "line 1: class definitions are not allowed"),
        (
            "match ():\n    case tuple(__class__=c):\n        ans = 1",
            "line 2: the dunder attribute",
        ),
        (
            "from functools import update_wrapper",
            "'update_wrapper' is not available from functools",
        ),
        ("def f(__x__):\n    return 1", "dunder name '__x__'"),
        # unicode look-alikes: Python folds identifiers with NFKC, and so does the check
        ("ｅｘｅｃ('ans = 1')", "'exec' is not allowed"),
        ("ans = __ｉｍｐｏｒｔ__('os')", "dunder name '__import__'"),
        ("ans = ｏｐｅｎ('/etc/passwd')", "'open' is not allowed"),
        ("ans = ().__ｃｌａｓｓ__", "dunder attribute '__class__'"),
        ("import ｏｓ", "import of 'os' is not allowed"),
    ],
)
def test_forbidden_programs_are_rejected_before_running(code, message):
    result = run_program(code)
    assert result.status == "forbidden"
    assert message in result.error


def test_cyrillic_look_alike_is_just_an_unknown_name():
    # "ехес" in Cyrillic letters is not "exec" even after NFKC: it is simply undefined
    result = run("ехес('import os')")
    assert result.status == "runtime_error"
    assert result.error.startswith("NameError")


def test_oversized_input_is_forbidden_unread():
    result = run_program("x = 1\n" * 20_000)  # 120 KB
    assert result.status == "forbidden"
    assert str(MAX_SOURCE_BYTES) in result.error


@pytest.mark.parametrize(
    "code",
    [
        "(" * 100_000,
        "(" * 5_000 + ")" * 5_000,
        "x = " + "-" * 19_000 + "1",
        "x = " + "1 + " * 4_000 + "1",
        "x = " + "[" * 3_000 + "]" * 3_000,
        "x = " + "not " * 4_000 + "y",
        "x = a" + ".b" * 6_000,
        "".join(" " * i + "if x:\n" for i in range(150)),
        "ans = 1\x00",
        "\ufeffans = 1\udcff",
    ],
)
def test_pathological_sources_are_rejected_without_crashing(code):
    result = run_program(code)
    assert result.status in {"syntax_error", "forbidden"}
    assert result.error


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="code must be a str"):
        run_program(b"ans = 1")
    with pytest.raises(ValueError, match="timeout must be positive"):
        run_program("ans = 1", timeout=0)


# Hostile programs: the walls behind the static check. ----------------------------------------


def test_without_the_static_check_imports_are_still_refused():
    outcome = run_in_sandbox(execute_program, "import os\nans = os.getpid()")
    status, _, error, line, _ = outcome.value
    assert (status, line) == ("runtime_error", 1)
    assert "ImportError: import of 'os' is not allowed" in error


def test_without_the_static_check_module_internals_stay_hidden():
    code = "import fractions\nans = fractions.sys.modules['os'].getpid()"
    status, _, error, _, _ = run_in_sandbox(execute_program, code).value
    assert status == "runtime_error"
    assert "has no attribute 'sys'" in error


def test_without_the_static_check_a_fork_bomb_still_cannot_fork():
    escape = (
        "for c in ().__class__.__base__.__subclasses__():\n"
        "    if c.__name__ == '_wrap_close':\n"
        "        system = c.__init__.__globals__\n"
        "while True:\n"
        "    system['fork']()\n"
    )
    status, _, error, _, _ = run_in_sandbox(execute_program, escape, timeout=10).value
    assert status == "runtime_error"
    assert error.startswith(("PermissionError", "BlockingIOError"))


def test_library_helpers_that_reach_module_globals_are_not_exported():
    # the static check sees no dunder here, only a string; the module copy must not offer it
    escape = (
        "import functools, statistics\n"
        "def h():\n"
        "    pass\n"
        "functools.update_wrapper(h, statistics.mean, (), ('__glob' + 'als__',))\n"
        "ans = len(sys.modules['os'].listdir('/'))\n"
    )
    result = run(escape)
    assert result.status == "runtime_error"
    assert result.error == (
        "AttributeError: module 'functools' has no attribute 'update_wrapper' (line 4)"
    )
    assert run("import decimal\nans = decimal.DefaultContext.prec").status == "runtime_error"


def test_tampering_with_shared_classes_does_not_leak_into_later_runs():
    tamper = "import fractions\nfractions.Fraction.limit_denominator = 5\nans = 1"
    check = "import fractions\nans = fractions.Fraction(3, 7).limit_denominator(2)"
    for _ in range(sandbox._POOL.size * 2):  # every worker sees a tampering run
        assert run(tamper).ok
    assert all(run(check).answer == 0.5 for _ in range(sandbox._POOL.size * 2))


def test_decimal_context_is_reset_between_runs():
    assert run("import decimal\ndecimal.getcontext().prec = 2\nans = 1").ok
    code = "from decimal import Decimal\nans = Decimal(1) / Decimal(3)"
    assert all(run(code).answer == pytest.approx(1 / 3) for _ in range(4))


def test_namespace_is_fresh_for_every_run():
    assert run("secret = 41\nans = 1").ok
    assert all(run("ans = secret + 1").status == "runtime_error" for _ in range(4))


# Concurrency and properties. -----------------------------------------------------------------


def test_eight_threads_at_once_all_get_their_own_answers():
    answers: dict[int, float | None] = {}

    def call(i: int) -> None:
        answers[i] = run(f"total = 0\nfor k in range({i} + 1):\n    total += k\nans = total").answer

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {i: float(i * (i + 1) // 2) for i in range(8)}


_FRAGMENTS = [
    "ans = 1",
    "x = 2 * 3",
    "ans = x / 0",
    "def solution():",
    "    return 4",
    "import math",
    "import os",
    "while True: pass",
    "ans = 'text'",
    "print(ans)",
    "for i in range(3):",
    "    x += i",
    "ans = [0] * 10**9",
    "(",
    "ans = x ** 0.5",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(_FRAGMENTS), max_size=6)))
def test_random_input_never_raises_and_respects_the_timeout(source):
    code = source if isinstance(source, str) else "\n".join(source)
    started = time.monotonic()
    result = run_program(code, timeout=0.3)
    assert result.status in STATUSES
    assert (result.answer is not None) == (result.status == "ok")
    assert time.monotonic() - started < 0.3 + MARGIN
