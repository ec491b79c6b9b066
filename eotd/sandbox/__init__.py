"""A warm pool of sandboxed worker processes that run one function call each, with limits.

``run_in_sandbox(fn, *args, timeout=..., memory_mb=...)`` sends a module-level function (pickled
by reference) and its arguments to a worker process and returns a :class:`SandboxOutcome`; it
never raises for anything the task does. Workers are started ahead and preloaded (``math``,
``sympy``, the ``eotd`` engine), so a call costs a pipe round trip, not a process start.

The worker is assumed hostile: a program that got past the callers' static check runs arbitrary
Python in it. So the parent takes nothing from a worker but data (:mod:`eotd.sandbox.wire`):
replies are JSON, capped at ``MAX_REPLY_BYTES`` and checked against the function's return
annotation; a reply that is not is refused, its worker killed (status ``"crashed"``), and never
unpickled. Requests (parent to worker) are pickles: the parent is trusted.

How workers are started (:mod:`eotd.sandbox.zygote`; the parent's handles on them in
:mod:`eotd.sandbox.workers`): a *zygote*, a fresh interpreter launched
with :mod:`subprocess` in a minimal environment (no secrets), imports the preloads once and then
forks each worker on request. ``spawn`` and ``forkserver`` would re-run the parent's ``__main__``
(which imports torch in ``app.py``: 2-5 s per worker) and ``fork`` from the threaded,
model-holding parent is unsafe. Starting the zygote costs about a second, a worker about 10 ms,
so a killed worker is replaced at once. Workers outlive no parent: an idle one exits when its
socket closes, a busy one at its CPU limit.

The pool (:mod:`eotd.sandbox.pool`), configured once from the environment at import:
``EOTD_SANDBOX_WORKERS`` workers (default min(2, CPUs)), started on first use or by
:func:`warm_up`; a call waits at most ``EOTD_SANDBOX_WAIT`` seconds (default 10) for a free
worker, else it is answered ``"busy"`` (try again) rather than queued. A forked child of the
parent starts its own pool. :class:`SandboxPool` makes other pools (tests).

Limits, four walls deep behind the callers' static check (:mod:`eotd.sandbox.policy`):
- wall clock, enforced by the parent (no SIGALRM): past the deadline the worker gets SIGKILL
  (through a pidfd, immune to pid reuse) and a fresh one takes its place, so no call holds a
  worker past its timeout;
- the user: a worker started as root drops to ``nobody`` (setgroups([]), gid and uid 65534) or
  dies; it cannot read the app's 0600 files nor its ``/proc/<pid>/environ``, ``mem`` or ``fd``.
  An import directory ``nobody`` cannot reach (an interpreter under a 0700 /root) is reached
  through a ``/proc/self/fd`` descriptor the zygote opened. The worker is undumpable (closed to
  other ``nobody`` processes) and has no_new_privs;
- rlimits: ``RLIMIT_AS`` (its warm size plus ``memory_mb``; beyond it ``MemoryError``),
  ``RLIMIT_CPU`` (a backstop past the timeout), ``RLIMIT_NPROC=0``, ``RLIMIT_FSIZE=0``, a small
  ``RLIMIT_NOFILE``, no core dumps; Landlock, where the kernel has it: reading only the import
  path's packages and modules and the system libraries (not the rest of the project folder,
  other processes' /proc entries, the store), no writing;
- a seccomp filter (Linux x86_64/aarch64): fork, clone, exec, opening files for writing,
  deleting, renaming or chmod-ing them, sockets, signals to other processes, pidfds, ptrace,
  process_vm_readv/writev, kcmp, prctl, mounts, namespaces and the administrative syscalls all
  fail with EPERM. A worker whose filter cannot be installed runs nothing: every call is
  answered ``"refused"`` and the cause logged, unless ``EOTD_SANDBOX_ALLOW_NO_SECCOMP=1``.
"""

from eotd.sandbox.policy import NOBODY_UID, OPEN_FILES
from eotd.sandbox.pool import (
    _POOL,
    SandboxOutcome,
    SandboxPool,
    run_in_sandbox,
    shutdown,
    warm_up,
)
from eotd.sandbox.wire import MAX_REPLY_BYTES, STDOUT_CAP
from eotd.sandbox.workers import STARTUP_TIMEOUT
from eotd.sandbox.zygote import PRELOAD

__all__ = [
    "MAX_REPLY_BYTES",
    "NOBODY_UID",
    "OPEN_FILES",
    "PRELOAD",
    "STARTUP_TIMEOUT",
    "STDOUT_CAP",
    "_POOL",
    "SandboxOutcome",
    "SandboxPool",
    "run_in_sandbox",
    "shutdown",
    "warm_up",
]
