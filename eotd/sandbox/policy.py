"""What confines a worker: its user, rlimits, a Landlock ruleset and a seccomp filter.

:func:`prepare` runs once in the zygote (trusted, before any worker exists); :func:`lock_down`
runs in every worker before its first task and reports what it achieved as a
:class:`Confinement`. The parent decides from that report whether the worker may run code.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.machinery
import os
import resource
import signal
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

NOBODY_UID = 65534
"""The user (and group) a worker started as root runs as."""
OPEN_FILES = 32
"""RLIMIT_NOFILE in the worker: enough for lazy imports, too few to hoard descriptors."""

_MIB = 1 << 20
_PR_SET_DUMPABLE, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 4, 22, 38
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
_LIBC.syscall.restype = ctypes.c_long

# Only these files and directories (and whatever lies beneath them) stay readable to a worker
# under Landlock, besides the import path: shared libraries for lazily loaded extensions and the
# time zone data that ``datetime`` reads.
_SYSTEM_READABLE = (
    *("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache"),
    *("/etc/localtime", "/usr/share/zoneinfo"),
)


@dataclass
class Plan:
    """What the zygote worked out for its workers' Landlock rules (paths as workers see them).

    ``listable``: the import path's directories, whose entries (names only) a worker may list;
    ``readable``: what it may read, beneath: the packages and modules on the import path.
    """

    listable: list[str] = field(default_factory=list)
    readable: list[str] = field(default_factory=list)


@dataclass
class Confinement:
    """What a worker's lock-down achieved, as it reports it before its first task.

    ``seccomp_error`` is None when the seccomp filter is installed, else why it is not;
    ``landlock`` whether file access is limited to the import path and system libraries.
    """

    uid: int
    seccomp_error: str | None
    landlock: bool


# ----------------------------------------------------------------------------------------------
# The zygote: make the import path usable by an unprivileged worker.


def _reachable(directory: str) -> bool:
    """Whether any user may list ``directory`` and traverse every directory above it."""
    path = Path(directory).resolve()
    for current in (path, *path.parents):
        needed = stat.S_IXOTH | (stat.S_IROTH if current == path else 0)
        if current.stat().st_mode & needed != needed:
            return False
    return True


def _anchor_import_path() -> None:
    """Give each import directory that ``nobody`` cannot reach (e.g. one under a 0700 /root) a
    ``/proc/self/fd/N`` alias, through a descriptor every worker inherits: a process may always
    follow its own descriptors, whatever the directories above. ``sys.path`` and the ``__path__``
    of every loaded package switch to the aliases, so lazy imports keep working after the drop;
    what lies inside still needs its usual world-readable permissions."""
    anchors = []
    for entry in sorted(filter(None, set(sys.path)), key=len, reverse=True):  # innermost first
        if os.path.isdir(entry) and not _reachable(entry):
            anchors.append((entry, f"/proc/self/fd/{os.open(entry, os.O_PATH | os.O_DIRECTORY)}"))

    def moved(path: str) -> str:
        for real, alias in anchors:
            if path == real or path.startswith(real + os.sep):
                return alias + path[len(real) :]
        return path

    if anchors:
        sys.path[:] = [moved(entry) for entry in sys.path]
        for module in list(sys.modules.values()):
            paths = getattr(module, "__path__", None)
            if isinstance(paths, list):
                paths[:] = [moved(entry) for entry in paths]
        sys.path_importer_cache.clear()


def _importable(entry: str) -> list[str]:
    """The packages, modules and library folders directly inside import directory ``entry``."""
    suffixes = tuple(importlib.machinery.all_suffixes())
    found = []
    with os.scandir(entry) as children:
        for child in children:
            if child.is_dir():
                package = os.path.exists(os.path.join(child.path, "__init__.py"))
                if package or child.name == "__pycache__" or child.name.endswith(".libs"):
                    found.append(child.path)
            elif child.name.endswith(suffixes):
                found.append(child.path)
    return found


def prepare() -> Plan:
    """In the zygote, after its preloads: anchor the import path if workers will drop root, and
    list what Landlock lets them read (not the rest of a project folder, e.g. its data store)."""
    if os.geteuid() == 0:
        _anchor_import_path()
    plan = Plan()
    for entry in dict.fromkeys(sys.path):
        if entry and os.path.isdir(entry):
            plan.listable.append(entry)
            plan.readable += _importable(entry)
    plan.readable += [path for path in _SYSTEM_READABLE if os.path.exists(path)]
    return plan


# ----------------------------------------------------------------------------------------------
# The worker.

_DENIED_SYSCALLS = {
    # name: (x86_64 number, aarch64 number or None), from the kernel's unistd headers
    # new processes and programs
    "clone": (56, 220), "clone3": (435, 435), "fork": (57, None), "vfork": (58, None),
    "execve": (59, 221), "execveat": (322, 281),
    # changes to the file system (open/openat for writing are refused by their flags)
    "creat": (85, None), "unlink": (87, None), "unlinkat": (263, 35), "rename": (82, None),
    "renameat": (264, 38), "renameat2": (316, 276), "mkdir": (83, None), "mkdirat": (258, 34),
    "rmdir": (84, None), "mknod": (133, None), "mknodat": (259, 33), "link": (86, None),
    "linkat": (265, 37), "symlink": (88, None), "symlinkat": (266, 36), "chmod": (90, None),
    "fchmod": (91, 52), "fchmodat": (268, 53), "chown": (92, None), "fchown": (93, 55),
    "lchown": (94, None), "fchownat": (260, 54), "truncate": (76, 45), "ftruncate": (77, 46),
    "openat2": (437, 437), "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    "io_uring_setup": (425, 425),
    # other processes: signals, descriptors, memory, tracing, comparison of kernel objects
    "socket": (41, 198), "kill": (62, 129), "tkill": (200, 130), "tgkill": (234, 131),
    "rt_sigqueueinfo": (129, 138), "rt_tgsigqueueinfo": (297, 240),
    "pidfd_open": (434, 434), "pidfd_getfd": (438, 438), "pidfd_send_signal": (424, 424),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "process_madvise": (440, 440), "process_mrelease": (448, 448), "kcmp": (312, 272),
    "move_pages": (279, 239), "migrate_pages": (256, 238), "prctl": (157, 167),
    # mounts, namespaces, the machine
    "mount": (165, 40), "umount2": (166, 39), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "pivot_root": (155, 41), "chroot": (161, 51),
    "unshare": (272, 97), "setns": (308, 268), "reboot": (169, 142), "swapon": (167, 224),
    "swapoff": (168, 225), "init_module": (175, 105), "finit_module": (313, 273),
    "delete_module": (176, 106), "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219), "acct": (163, 89),
    "quotactl": (179, 60), "quotactl_fd": (443, 443), "syslog": (103, 116),
    "vhangup": (153, 58), "sethostname": (170, 161), "setdomainname": (171, 162),
    "settimeofday": (164, 170), "clock_settime": (227, 112), "adjtimex": (159, 171),
    "iopl": (172, None), "ioperm": (173, None),
}  # fmt: skip
"""Syscalls a worker may not make (they fail with EPERM)."""
_OPEN_CALLS = {"x86_64": ((2, 1), (257, 2)), "aarch64": ((56, 2),)}  # (open(at), flags arg)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def _seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """A classic-BPF seccomp filter: (code, jump if true, jump if false, constant) rows.

    Layout: check the ABI, load the syscall number, compare with each open call (to its flag
    check) and each denied syscall (to EPERM), else allow. Jumps only go forward.
    """
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    kill = 0x80000000  # SECCOMP_RET_KILL_PROCESS, for a foreign ABI (i386, x32)
    index = 0 if machine == "x86_64" else 1
    denied = [numbers[index] for numbers in _DENIED_SYSCALLS.values() if numbers[index]]
    opens = _OPEN_CALLS[machine]
    first_check = 5 + len(opens) + len(denied) + 1
    deny_at = first_check + 4 * len(opens)
    program = [(load, 0, 0, 4), (jeq, 1, 0, _AUDIT_ARCH[machine]), (ret, 0, 0, kill)]
    program += [(load, 0, 0, 0), (jge, deny_at + 1 - 5, 0, 0x40000000)]  # x32 numbers: kill
    for i, (number, _) in enumerate(opens):
        program.append((jeq, first_check + 4 * i - len(program) - 1, 0, number))
    for number in denied:
        program.append((jeq, deny_at - len(program) - 1, 0, number))
    program.append((ret, 0, 0, allow))
    for _, flags_arg in opens:  # seccomp_data.args[i] starts at byte 16 + 8 i (low half first)
        program += [(load, 0, 0, 16 + 8 * flags_arg), (jset, 0, 1, _WRITE_FLAGS)]
        program += [(ret, 0, 0, deny), (ret, 0, 0, allow)]
    program += [(ret, 0, 0, deny), (ret, 0, 0, kill)]
    assert all(0 <= jt < 256 for _, jt, _, _ in program)
    return program


def _install_seccomp() -> None:
    """Install :func:`_seccomp_program` for this process (no_new_privs must be set); OSError
    says why not."""
    machine = os.uname().machine
    if machine not in _AUDIT_ARCH or not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, f"no seccomp filter for {sys.platform} on {machine}")
    program = _seccomp_program(machine)
    rows = (ctypes.c_uint64 * len(program))()
    for i, (code, jt, jf, k) in enumerate(program):
        rows[i] = code | jt << 16 | jf << 24 | k << 32  # struct sock_filter, little-endian
    fprog = (ctypes.c_uint64 * 2)(len(program), ctypes.addressof(rows))  # struct sock_fprog
    if _LIBC.prctl(_PR_SET_SECCOMP, 2, ctypes.addressof(fprog), 0, 0) != 0:  # FILTER mode
        code = ctypes.get_errno()
        raise OSError(code, f"the kernel refused the seccomp filter: {os.strerror(code)}")


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _install_landlock(plan: Plan) -> bool:
    """Limit file access to reading ``plan``'s paths (and this process's /proc entries), where
    the kernel has Landlock; no_new_privs must be set. False where it is unavailable."""
    create, add_rule, restrict = 444, 445, 446  # the same numbers on x86_64 and aarch64
    abi = _LIBC.syscall(create, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return False
    execute, read_file, read_dir = 1 << 0, 1 << 2, 1 << 3
    handled = (1 << {1: 13, 2: 14, 3: 15, 4: 15}.get(abi, 16)) - 1  # every right the ABI knows
    scoped = 0b11 if abi >= 6 else 0  # no abstract unix sockets or signals beyond the worker
    attr = (ctypes.c_uint64 * 3)(handled, 0, scoped)  # struct landlock_ruleset_attr
    ruleset = _LIBC.syscall(create, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        return False
    try:
        rules = [(path, read_dir) for path in plan.listable]
        rules += [(path, read_file | read_dir | execute) for path in plan.readable]
        rules.append(("/proc/self", read_file | read_dir))
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= read_file | execute  # the only rights a file rule may hold
                rule = _PathBeneath(access, fd)
                if _LIBC.syscall(add_rule, ruleset, 1, ctypes.byref(rule), 0) != 0:
                    return False
            finally:
                os.close(fd)
        return _LIBC.syscall(restrict, ruleset, 0) == 0
    finally:
        os.close(ruleset)


def _address_space() -> int:
    """This process's current virtual size in bytes (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def lock_down(plan: Plan) -> Confinement:
    """Apply the limits that hold for the worker's whole life, seccomp last.

    Root drops to ``nobody`` (an exception if it cannot: a worker never keeps uid 0); the
    process becomes undumpable (its memory and /proc entries closed to other ``nobody``
    processes, sibling workers included) and gets no_new_privs.
    """
    sys.dont_write_bytecode = True
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY_UID)
        os.setuid(NOBODY_UID)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise PermissionError("the sandbox worker could not drop root")
    if _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) or _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        raise OSError(ctypes.get_errno(), "prctl failed")
    for limit, value in (
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, OPEN_FILES),
    ):
        resource.setrlimit(limit, (value, value))
    landlock = _install_landlock(plan)
    try:
        _install_seccomp()
        seccomp_error = None
    except OSError as exc:
        seccomp_error = str(exc)
    return Confinement(os.getuid(), seccomp_error, landlock)


def set_task_limits(timeout: float, memory_mb: int) -> None:
    """Limit the coming task: address space (warm size plus ``memory_mb``) and CPU seconds (a
    backstop a little past the parent's wall-clock ``timeout``)."""
    base = _address_space()
    if base:
        soft = base + memory_mb * _MIB
        soft = soft if soft < 1 << 62 else resource.RLIM_INFINITY  # (which is -1)
        resource.setrlimit(resource.RLIMIT_AS, (soft, resource.RLIM_INFINITY))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime + timeout) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))


def clear_task_limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
