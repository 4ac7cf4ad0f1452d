"""lstmctl's C LSTM kernel (lstmctl/models/_lstm_kernel.c, built by lstmctl/models/kernel.py):
its GEMM against torch, its gates at the edges of their range, and how it is built, cached,
shared between processes and replaced by the pure-torch path when there is no compiler.
The equality of whole layers with nn.LSTM on every path is in test_cells.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from lstmctl.models import cells, kernel
from lstmctl.models.layers import HandLSTM

HAS_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no C compiler on this machine")


@pytest.fixture
def k(monkeypatch):
    monkeypatch.setenv("LSTMCTL_KERNEL", "c")
    return kernel.get()


def _python(code: str, env: dict, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


# ------------------------------------------------------------------------------------------- GEMM


@needs_cc
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "M,N,K",
    [(1, 1, 1), (7, 33, 5), (8, 32, 128), (9, 64, 129), (17, 100, 300), (64, 256, 64), (3, 8, 1000), (640, 16, 7)],
)
@pytest.mark.parametrize("a_layout", ["rows", "transposed"])
@pytest.mark.parametrize("c_kind", ["none", "bias", "matrix"])
def test_gemm_equals_torch(k, M, N, K, dtype, a_layout, c_kind):
    g = torch.Generator().manual_seed(M * 1000 + N * 10 + K)
    a = torch.randn(M, K, generator=g, dtype=dtype) if a_layout == "rows" else torch.randn(K, M, generator=g, dtype=dtype).t()
    w = torch.randn(K, N, generator=g, dtype=dtype)
    c = {"none": None, "bias": torch.randn(N, generator=g, dtype=dtype), "matrix": torch.randn(M, N, generator=g, dtype=dtype)}[c_kind]
    got = cells._mm(k, a, w, c)
    want = a @ w if c is None else torch.addmm(c, a, w)
    tol = (1e-5 if dtype == torch.float32 else 1e-12) * max(1.0, want.abs().max().item())
    assert got.shape == want.shape and got.is_contiguous()
    assert (got - want).abs().max().item() <= tol


@needs_cc
def test_gemm_accepts_a_column_strided_weight(k):
    """w given as a transposed view (columns not contiguous) is copied, not misread."""
    a, w = torch.randn(9, 5), torch.randn(40, 5).t()
    assert (cells._mm(k, a, w) - a @ w).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------ gates


def _single_unit_pair(dtype):
    """nn.LSTM and the hand-built LSTM with 1 input and 1 unit, weights chosen so that every gate's
    pre-activation is the input itself times a gate-specific factor."""
    ref = nn.LSTM(1, 1, batch_first=True).to(dtype)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.tensor([[1.0], [-1.0], [0.5], [2.0]], dtype=dtype))
        ref.weight_hh_l0.fill_(0.3)
        ref.bias_ih_l0.zero_()
        ref.bias_hh_l0.zero_()
    hand = HandLSTM(1, 1).to(dtype)
    hand.load_state_dict(ref.state_dict())
    return ref, hand


@pytest.mark.parametrize("path", [pytest.param("c", marks=needs_cc), "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_gates_over_their_whole_range(path, dtype, monkeypatch):
    """Each path computes the gates its own way: the C loops write sigmoid and tanh out on an exp()
    of lstmctl's own; the pure-torch path gets tanh from one sigmoid, tanh(z) = 2σ(2z) - 1 (with the g
    weights doubled and the cell carried doubled). Both must agree with nn.LSTM from deep saturation
    to zero, each sample a different pre-activation, 20k of them, values and gradients."""
    monkeypatch.setenv("LSTMCTL_KERNEL", path)
    assert (kernel.get() is not None) == (path == "c")  # the path named is the one that runs
    ref, hand = _single_unit_pair(dtype)
    z = torch.cat([torch.linspace(-120, 120, 20_001, dtype=dtype), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e4, -1e4], dtype=dtype)])
    x = z.view(-1, 1, 1).repeat(1, 3, 1)  # three steps, so the cell state feeds back
    x.requires_grad_(True)
    out_r, (h_r, c_r) = ref(x)
    out_h, (h_h, c_h) = hand(x)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert (out_h - out_r).abs().max().item() <= tol
    assert (c_h - c_r).abs().max().item() <= tol
    g_r = torch.autograd.grad(out_r.sum() + c_r.sum(), [x, *ref.parameters()])
    g_h = torch.autograd.grad(out_h.sum() + c_h.sum(), [x, *hand.parameters()])
    for a, b in zip(g_h, g_r):
        assert (a - b).abs().max().item() <= (1e-5 if dtype == torch.float32 else 1e-12) * max(1.0, b.abs().max().item())


@needs_cc
def test_nan_propagates_like_nn_lstm(k):
    """A NaN in the input must come out as NaN (training stops on a NaN loss), not be clamped away."""
    ref, hand = _single_unit_pair(torch.float32)
    x = torch.tensor([[[0.5], [float("nan")], [0.2]], [[0.1], [0.2], [0.3]]])
    a, b = hand(x)[0], ref(x)[0]
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    assert torch.isnan(a[0, 1:]).all() and not torch.isnan(a[1]).any()
    inf = torch.tensor([[[float("inf")], [-float("inf")], [1.0]]])
    torch.testing.assert_close(hand(inf)[0], ref(inf)[0], atol=1e-6, rtol=0, equal_nan=True)


@needs_cc
def test_backward_twice_with_retain_graph(k):
    """The C backward must leave what forward saved intact, as nn.LSTM's does."""
    torch.manual_seed(0)
    m = HandLSTM(3, 16)
    out = m(torch.randn(8, 5, 3))[0].sum()
    g1 = torch.autograd.grad(out, list(m.parameters()), retain_graph=True)
    g2 = torch.autograd.grad(out, list(m.parameters()))
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)


@needs_cc
def test_under_torch_compile_the_layer_runs_on_the_c_loops(k, monkeypatch):
    """torch.compile cannot trace into ctypes; the layer leaves the graph and runs eagerly on C."""
    ran = []
    fused = cells._FusedPath.forward
    monkeypatch.setattr(cells._FusedPath, "forward", staticmethod(lambda *a: ran.append(1) or fused(*a)))
    torch.manual_seed(0)
    m = HandLSTM(3, 8)
    x = torch.randn(4, 5, 3)
    want = m(x)[0]
    ran.clear()
    got = torch.compile(m, backend="eager")(x)[0]
    got.sum().backward()
    assert ran and (got - want).abs().max().item() == 0.0
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("path", ["auto", "torch"])
def test_under_autocast_the_recurrence_runs_in_float32(path, monkeypatch):
    """Autocast would hand the recurrence bfloat16 products that its float32 buffers cannot take
    (and a C pointer the wrong width): the layer turns autocast off and runs in float32."""
    monkeypatch.setenv("LSTMCTL_KERNEL", path)
    torch.manual_seed(0)
    m, x = HandLSTM(3, 8), torch.randn(2, 4, 3)
    want = m(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m(x)[0]
    assert got.dtype == torch.float32 and torch.equal(got, want)
    got.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("path", ["auto", "torch"])
def test_wrong_input_size_is_refused_like_nn_lstm(path, monkeypatch):
    """The C GEMM trusts its sizes; a wrong feature count must be an error, never a read past W_ih."""
    monkeypatch.setenv("LSTMCTL_KERNEL", path)
    m = HandLSTM(40, 16)
    for features in (32, 48):
        with pytest.raises(RuntimeError, match="input_size. Expected 40, got"):
            m(torch.randn(4, 8, features))
    k = kernel.get()
    if k is not None:
        with pytest.raises(RuntimeError, match="shapes do not fit"):
            cells._mm(k, torch.randn(4, 8), torch.randn(9, 16))
        with pytest.raises(RuntimeError, match="w_ih has shape"):
            cells.lstm_layer(torch.randn(3, 2, 5), torch.zeros(2, 4), torch.zeros(2, 4), torch.randn(16, 6), torch.randn(16, 4), torch.zeros(16), torch.zeros(16))


@pytest.mark.parametrize("path", [pytest.param("c", marks=needs_cc), "torch"])
def test_second_derivative_raises_instead_of_being_wrong(path, monkeypatch):
    """The hand-written backward is not itself differentiable: once_differentiable on
    _LSTMLayer.backward makes a second derivative raise its own error. Without the guard the C path
    gives a wrong second derivative without a word (what C computed enters as constants) and the
    torch path fails on its out= buffers with another RuntimeError, so the message is matched."""
    monkeypatch.setenv("LSTMCTL_KERNEL", path)
    m = HandLSTM(3, 4)
    assert (kernel.get() is not None) == (path == "c")  # the path named is the one that runs
    x = torch.randn(2, 5, 3, requires_grad=True)
    (gx,) = torch.autograd.grad(m(x)[0].pow(2).sum(), x, create_graph=True)
    # backward() runs the whole graph of gx, so the guard's node executes and raises; grad() with
    # respect to the parameters would stop earlier (the guard cuts them out of gx's graph)
    with pytest.raises(RuntimeError, match="differentiate twice a function that was marked with @once_differentiable"):
        gx.pow(2).sum().backward()


def test_meta_device_and_float64_under_autocast():
    m = HandLSTM(3, 4)
    out, (h, c) = m.to("meta")(torch.randn(2, 5, 3, device="meta"))
    assert out.shape == (2, 5, 4) and out.device.type == "meta"
    m64 = HandLSTM(3, 4).double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert m64(torch.randn(2, 5, 3, dtype=torch.float64))[0].dtype == torch.float64


def test_more_threads_send_large_products_to_torch(monkeypatch):
    monkeypatch.delenv("LSTMCTL_KERNEL_STEP", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert cells._c_is_faster(10**9)
        torch.set_num_threads(4)
        assert not cells._c_is_faster(10**9) and cells._c_is_faster(1000)
        monkeypatch.setenv("LSTMCTL_KERNEL_STEP", "c")
        assert cells._c_is_faster(10**9)
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------ building and fallbacks


@needs_cc
def test_built_once_then_loaded_from_the_cache(tmp_path):
    """A compiler wrapper counts the compilations: the first process builds, the second only loads."""
    log = tmp_path / "cc.log"
    real = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    wrapper = tmp_path / "countcc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    env = {"LSTMCTL_CACHE_DIR": str(tmp_path / "cache"), "CC": str(wrapper), "LSTMCTL_KERNEL": "c"}
    code = """
        import torch
        from lstmctl.models.layers import HandLSTM, describe_kernel
        print(describe_kernel(HandLSTM(2, 3), torch.device("cpu")))
    """
    first, second = _python(code, env), _python(code, env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.startswith("c (") and "built in" in first.stdout
    assert second.stdout.startswith("c (") and "built in" not in second.stdout
    assert len(log.read_text().splitlines()) == 1
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".sha256", ".so"]  # no temporary files left


@needs_cc
def test_processes_building_at_once_all_get_a_whole_library(tmp_path):
    """DDP ranks start together on an empty cache: each builds, each publishes atomically."""
    env = {"LSTMCTL_CACHE_DIR": str(tmp_path / "cache"), "LSTMCTL_KERNEL": "c"}
    code = """
        import torch
        from lstmctl.models.layers import HandLSTM
        torch.manual_seed(0)
        m, ref = HandLSTM(3, 16), torch.nn.LSTM(3, 16, batch_first=True)
        ref.load_state_dict(m.state_dict())
        x = torch.randn(4, 6, 3)
        print(float((m(x)[0] - ref(x)[0]).abs().max()))
    """
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=180) + (p.returncode,) for p in procs]
    for out, err, rc in results:
        assert rc == 0, err
        assert float(out) < 1e-6
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".sha256", ".so"]


@needs_cc
def test_a_truncated_cached_library_is_rebuilt_not_loaded(tmp_path):
    """A crash or a full disk can leave a partial .so; loading one can kill the process with SIGBUS.
    The checksum beside it catches that and the kernel is built again."""
    env = {"LSTMCTL_CACHE_DIR": str(tmp_path / "cache"), "LSTMCTL_KERNEL": "c"}
    code = """
        import torch
        from lstmctl.models.layers import HandLSTM, describe_kernel
        m = HandLSTM(3, 16)
        print(describe_kernel(m, torch.device("cpu")), float(m(torch.randn(2, 5, 3))[0].abs().sum()) > 0)
    """
    assert _python(code, env).returncode == 0
    (so,) = (tmp_path / "cache").glob("*.so")
    whole = so.read_bytes()
    so.write_bytes(whole[: len(whole) // 3])
    r = _python(code, env)
    assert r.returncode == 0, r.stderr
    assert "built in" in r.stdout and r.stdout.strip().endswith("True")
    assert so.read_bytes() == whole


@needs_cc
def test_compiler_with_arguments_and_an_unwritable_cache(tmp_path):
    """CC may carry arguments ("ccache gcc"); a cache path that cannot be written (here: a file)
    means a private temporary build, not the slow path."""
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    cc = shutil.which("gcc") or shutil.which("cc")
    r = _python(
        "from lstmctl.models import kernel; k = kernel.get(); print(k is not None, k and k.path)",
        {"LSTMCTL_CACHE_DIR": str(blocked / "cache"), "CC": f"{cc} -pipe", "LSTMCTL_KERNEL": "c"},
    )
    assert r.returncode == 0, r.stderr
    ok, path = r.stdout.split()
    assert ok == "True" and "lstmctl-kernel-" in path


def test_without_a_compiler_the_torch_path_gives_the_same_results(tmp_path):
    env = {"LSTMCTL_CACHE_DIR": str(tmp_path / "cache"), "CC": str(tmp_path / "no-such-compiler"), "LSTMCTL_KERNEL": "auto"}
    code = """
        import torch
        from lstmctl.models import kernel
        from lstmctl.models.layers import HandLSTM, describe_kernel
        torch.manual_seed(0)
        m, ref = HandLSTM(3, 16), torch.nn.LSTM(3, 16, batch_first=True)
        ref.load_state_dict(m.state_dict())
        x = torch.randn(4, 6, 3)
        print(kernel.get() is None, float((m(x)[0] - ref(x)[0]).abs().max()))
        print(describe_kernel(m, torch.device("cpu")))
    """
    r = _python(code, env)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    is_none, diff = first.split()
    assert is_none == "True" and float(diff) < 1e-6
    assert second.startswith("torch (the C kernel could not be built") and "no-such-compiler" in second


def test_broken_compiler_falls_back_too(tmp_path):
    """A compiler that runs but fails (here: rejects every file) is a fallback, not a crash."""
    bad = tmp_path / "badcc"
    bad.write_text("#!/bin/sh\necho 'badcc: internal error' >&2\nexit 1\n")
    bad.chmod(0o755)
    r = _python(
        "from lstmctl.models import kernel; print(kernel.get() is None); print(kernel.why_not())",
        {"LSTMCTL_CACHE_DIR": str(tmp_path / "cache"), "CC": str(bad)},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "True" and "badcc: internal error" in r.stdout


def _tiny_hand_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "hand.yaml"
    cfg.write_text(
        "name: hand\nseed: 0\ndevice: cpu\n"
        "data: {name: sine_cosine, points: 40, seq_len: 10}\n"
        "model: {name: lstm_cell, hidden_size: 4}\n"
        "train: {epochs: 2, batch_size: 2, lr: 0.01}\n"
    )
    return cfg


def _lstmctl(args, env, cwd):
    exe = Path(sys.executable).with_name("lstmctl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lstmctl"]
    return subprocess.run(cmd + [str(a) for a in args], env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_demanding_the_kernel_without_a_compiler_is_one_line_exit_2(tmp_path):
    runs = tmp_path / "runs"
    env = {"LSTMCTL_CACHE_DIR": str(tmp_path / "cache"), "CC": str(tmp_path / "nocc"), "LSTMCTL_KERNEL": "c", "LSTMCTL_RUNS_DIR": str(runs)}
    r = _lstmctl(["train", _tiny_hand_config(tmp_path), "-q"], env, tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "cannot build the fused LSTM kernel" in lines[0] and "LSTMCTL_KERNEL=torch" in lines[0]
    assert not runs.exists() or not any(runs.iterdir()), "no run directory for a run that never started"


def test_cli_bad_kernel_setting_is_one_line_exit_2(tmp_path):
    env = {"LSTMCTL_KERNEL": "fast", "LSTMCTL_RUNS_DIR": str(tmp_path / "runs")}
    r = _lstmctl(["train", _tiny_hand_config(tmp_path), "-q"], env, tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "LSTMCTL_KERNEL='fast'" in r.stderr and "auto, torch, c" in r.stderr


@needs_cc
def test_cli_records_the_kernel_in_run_json(tmp_path):
    env = {"LSTMCTL_RUNS_DIR": str(tmp_path / "runs")}
    r = _lstmctl(["train", _tiny_hand_config(tmp_path), "-q"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    (run,) = (tmp_path / "runs").iterdir()
    info = json.loads((run / "run.json").read_text())
    assert info["lstm_kernel"].startswith("c (") and ".so" in info["lstm_kernel"]
    # nn.LSTM runs have nothing to record
    r = _lstmctl(["train", _tiny_hand_config(tmp_path), "-q", "--set", "model.name=lstm"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    infos = [json.loads((d / "run.json").read_text()) for d in (tmp_path / "runs").iterdir()]
    assert sorted(str(i.get("lstm_kernel"))[:2] for i in infos) == ["No", "c "]


def test_cli_without_a_compiler_trains_on_torch_and_says_so(tmp_path):
    env = {"LSTMCTL_CACHE_DIR": str(tmp_path / "cache"), "CC": str(tmp_path / "nocc"), "LSTMCTL_RUNS_DIR": str(tmp_path / "runs")}
    r = _lstmctl(["train", _tiny_hand_config(tmp_path)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: the hand-built LSTM runs on its slower pure-torch path" in r.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "run.json").read_text())["lstm_kernel"].startswith("torch (the C kernel could not be built")
