"""Builds and loads the fused LSTM step loops of `_lstm_kernel.c` (used by cells.lstm_layer).

The C file is lstmctl's own code with no Python or torch headers: the system C compiler builds it
in well under a second the first time a hand-built LSTM runs on a CPU, into a per-user cache
(`$LSTMCTL_CACHE_DIR`, else `$XDG_CACHE_HOME/lstmctl`, else `~/.cache/lstmctl`), keyed by the
source, the compiler, the flags and the CPU, so later runs just load it. It is loaded with ctypes.

Where there is no compiler, or the build fails, the hand-built LSTM runs on its pure-torch path
(same results, about twice as slow as nn.LSTM on a CPU) and one debug log line says why.

`LSTMCTL_KERNEL` chooses: `auto` (default: the C loops if they build, else torch), `torch`
(never build or load them), `c` (fail loudly if they cannot be built).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lstmctl.errors import UserError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_lstm_kernel.c")
VERSION = 4  # must match lstmctl_kernel_version() in the C file
# Tried in order: the first set is tuned to this CPU; the second is portable.
FLAG_SETS = (
    ["-O3", "-fno-trapping-math", "-march=native"],
    ["-O3", "-fno-trapping-math"],
)
MODES = ("auto", "torch", "c")


class KernelError(UserError):
    """LSTMCTL_KERNEL is set wrong, or demands the C kernel (=c) where it cannot be built."""


@dataclass(frozen=True)
class Kernel:
    path: Path
    # each: torch dtype name ("float32", "float64") -> ctypes function
    forward: dict  # one step of the gates (after torch's recurrent matmul)
    backward: dict
    forward_seq: dict  # a whole sequence: recurrent matmul and gates, every step
    backward_seq: dict
    gemm: dict  # out = c + a @ w (strided a), for the input projection and weight gradients


_lock = threading.Lock()
_cache: dict[str, Kernel | None] = {}
_why_not: dict[str, str] = {}
_built_s: dict[str, float] = {}  # seconds spent compiling in this process, by mode


def mode() -> str:
    m = os.environ.get("LSTMCTL_KERNEL", "auto").strip().lower() or "auto"
    if m not in MODES:
        raise KernelError(f"LSTMCTL_KERNEL={m!r} is not one of {', '.join(MODES)}; unset it or pick one of them")
    return m


def cache_dir() -> Path:
    if os.environ.get("LSTMCTL_CACHE_DIR"):
        return Path(os.environ["LSTMCTL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lstmctl"


def _compiler() -> list[str] | None:
    """The compiler command: $CC (which may carry arguments, e.g. "ccache gcc"), else the first
    of cc, gcc, clang on the PATH."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        words = shlex.split(cc)
        return [shutil.which(words[0]) or words[0], *words[1:]]
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return [found]
    return None


def _cpu_identity() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    ident = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    ident.append(line.strip())
                if line.strip() == "":
                    break  # the first processor is enough
    except OSError:
        pass
    return "\n".join(ident)


def _key(cc: list[str], flags: list[str]) -> str:
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(cc).encode(), " ".join(flags).encode(), _cpu_identity().encode()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _build(cc: list[str], flags: list[str], out: Path) -> None:
    """Compile into a temporary file, make it durable, then publish it and its checksum atomically:
    concurrent builders (DDP ranks) each publish a whole, identical file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=".tmp.so", dir=out.parent)
    os.close(fd)
    tmp_sum = tmp + ".sha256"
    try:
        cmd = [*cc, *flags, "-fPIC", "-shared", "-o", tmp, str(SOURCE)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise OSError(f"{' '.join(cmd)} failed: {(res.stderr or res.stdout).strip()[:500]}")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _fsync_write(Path(tmp_sum), _digest(Path(tmp)).encode())
        os.replace(tmp, out)
        os.replace(tmp_sum, out.with_suffix(".sha256"))
        try:  # the renames themselves survive a crash
            dfd = os.open(out.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    finally:
        for leftover in (tmp, tmp_sum):
            if os.path.exists(leftover):
                os.unlink(leftover)


def _intact(path: Path) -> bool:
    """The cached library is the whole file its builder wrote (a crash, a full disk or a partial
    copy can leave a truncated one, which dlopen may map and then die on with SIGBUS)."""
    try:
        return path.with_suffix(".sha256").read_text().strip() == _digest(path)
    except OSError:
        return False


def _open(path: Path) -> Kernel:
    lib = ctypes.CDLL(str(path))
    if lib.lstmctl_kernel_version() != VERSION:
        raise OSError(f"{path} is version {lib.lstmctl_kernel_version()}, expected {VERSION}")
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    fns: dict[str, dict] = {k: {} for k in ("forward", "backward", "forward_seq", "backward_seq", "gemm")}
    signatures = {  # C name -> (field, argument types)
        "lstm_forward": ("forward", [p] * 6 + [i64] * 2),
        "lstm_backward": ("backward", [p] * 6 + [i64] * 2),
        "lstm_forward_seq": ("forward_seq", [p] * 7 + [i64] * 3),
        "lstm_backward_seq": ("backward_seq", [p] * 8 + [i64] * 3),
        "gemm": ("gemm", [p, i64, i64, p, i64, p, i64, p] + [i64] * 4),
    }
    for suffix, dtype in (("f32", "float32"), ("f64", "float64")):
        for cname, (field, argtypes) in signatures.items():
            f = getattr(lib, f"{cname}_{suffix}")
            f.argtypes, f.restype = argtypes, None
            fns[field][dtype] = f
    return Kernel(path=path, **fns)


def _writable_dir() -> Path:
    """The cache directory, or a private temporary one if the cache cannot be written (read-only
    home, a path that is a file): the kernel is then rebuilt once per process instead of cached."""
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    log.debug("cache directory %s is not writable; building the LSTM kernel in a temporary directory", d)
    return Path(tempfile.mkdtemp(prefix="lstmctl-kernel-"))


def _load() -> Kernel:
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler found (looked for $CC, cc, gcc, clang)")
    errors = []
    for flags in FLAG_SETS:
        name = f"lstm_kernel-{_key(cc, flags)}.so"
        try:
            path = cache_dir() / name
            if not _intact(path):
                path = _writable_dir() / name
                t0 = time.perf_counter()
                _build(cc, flags, path)
                _built_s[mode()] = time.perf_counter() - t0
            return _open(path)
        except (OSError, subprocess.SubprocessError, AttributeError) as e:
            errors.append(str(e))
    raise OSError("; ".join(errors))


def get() -> Kernel | None:
    """The loaded kernel, or None where the pure-torch path must be used. Built at most once."""
    m = mode()
    if m == "torch":
        return None
    with _lock:
        if m not in _cache:
            try:
                _cache[m] = _load()
            except OSError as e:
                if m == "c":
                    raise KernelError(f"cannot build the fused LSTM kernel: {e}; install a C compiler or set LSTMCTL_KERNEL=torch") from e
                _why_not[m] = str(e)
                log.debug("hand-built LSTM runs on the pure-torch path: %s", e)
                _cache[m] = None
        return _cache[m]


def why_not() -> str | None:
    """Why get() returned None in auto mode (for `lstmctl` diagnostics and tests)."""
    return _why_not.get("auto")


def summary() -> str:
    """What runs a standard hand-built LSTM layer on the CPU, for run.json and the start of
    training: "c (<library>[, built in N s])" or "torch (<why>)". Builds the kernel if it is not
    built yet. Which models have such layers is for models.layers.describe_kernel to say."""
    if mode() == "torch":
        return "torch (LSTMCTL_KERNEL=torch)"
    k = get()
    if k is None:
        return f"torch (the C kernel could not be built: {why_not()})"
    built = _built_s.get(mode())
    return f"c ({k.path}" + (f", built in {built:.1f} s)" if built is not None else ")")
