"""Hand-built recurrent cells: the gate equations written out in lstmctl's own code.

Every function here runs one layer in one direction over a whole sequence, time-major:
x is (T, B, I), the states are (B, H), the weights use PyTorch's layout and gate order
(LSTM: i, f, g, o; GRU: r, z, n), so a state dict moves between these cells and nn.LSTM/nn.GRU.

Standard LSTM, one step (σ = sigmoid, ⊙ = elementwise product):
    [i, f, g, o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
    i, f, o = σ(·);  g = tanh(·)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

Speed: `lstm_layer` is an autograd.Function with a hand-written backward and three implementations
of the same equations, all tested against nn.LSTM (tests/test_cells.py):
- the C loops over the whole sequence (_lstm_kernel.c, built on first use by kernel.py): per
  step a register-blocked GEMM for the recurrent product and one pass for the gates, forward and
  backward, Python entered once per layer. The default on the CPU; faster than nn.LSTM there.
- the C gate loop per step after a torch.addmm: for large layers on more than two threads, where
  torch's threaded BLAS does the products better than the single-threaded C GEMM.
- pure torch (_TorchPath): no compiler, CUDA, MPS, other dtypes, LSTMCTL_KERNEL=torch.
In every case the input projection of all steps and the weight gradients of all steps are one
matrix product each. The variants (peephole, coupled) and the GRU use plain autograd.
"""

from __future__ import annotations

import os

import torch

from lstmctl.models import kernel


class _TorchPath:
    """The pure-torch path of the standard LSTM layer (no compiler needed). Time-major: (T, B, ·).

    Exact power-of-two scalings keep the kernel count down without changing any rounding:
    - tanh(z) = 2σ(2z) - 1 (σ is several times faster than tanh on this CPU): the g rows of the
      weights are doubled, so ONE sigmoid over all four gates gives σ(i), σ(f), σ(2g), σ(o);
    - the cell is carried doubled (c2 = 2c), so tanh(c) = 2σ(c2) - 1 needs no extra multiply;
    - backward carries δ = dL/d(2c) and the g block of dL/dz divided by 8; the recurrent matmul of
      backward uses W_hh with its g rows times 8, and the weight gradients' g rows are scaled last.
    Per step, forward stores one (B, 6H) block [2g, 2c_{t-1}, σ(i), σ(f), σ(2g), σ(o)], so
    backward multiplies dL/dc by the partners of i, f and g (2g, 2c_{t-1}, σ(i)) in one kernel.
    Per-step views are made once with unbind: indexing inside the loop costs as much as a kernel.
    The weight gradients of all steps are one matmul each at the end.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        T, B, _ = x.shape
        H = w_hh.shape[1]
        scale = w_hh.new_ones(4 * H, 1)
        scale[2 * H : 3 * H] = 2.0
        # the input projection of every step in one matmul, both biases folded in
        xw = torch.addmm((b_ih + b_hh) * scale[:, 0], x.reshape(T * B, -1), (w_ih * scale).t()).view(T, B, 4 * H)
        w2_t = (w_hh * scale).t()
        R = x.new_empty(T + 1, B, 6 * H)  # per step: [2g_t, 2c_{t-1}, σ(i), σ(f), σ(2g), σ(o)]
        TC = x.new_empty(T, B, H)  # tanh(c_t)
        Hs = x.new_empty(T + 1, B, H)  # h_0 .. h_T; the output is Hs[1:]
        minus2 = x.new_full((B, H), -2.0)
        minus1 = x.new_full((B, H), -1.0)
        pre = x.new_empty(B, 4 * H)
        torch.mul(c0, 2.0, out=R[0, :, H : 2 * H])
        Hs[0] = h0
        xw_ = xw.unbind(0)
        G2_, C2_, S_ = R[:, :, :H].unbind(0), R[:, :, H : 2 * H].unbind(0), R[:, :, 2 * H :].unbind(0)
        Si, Sf, Sg, So = (R[:, :, (k + 2) * H : (k + 3) * H].unbind(0) for k in range(4))
        TC_, Hs_ = TC.unbind(0), Hs.unbind(0)
        for t in range(T):
            torch.addmm(xw_[t], Hs_[t], w2_t, out=pre)  # the one recurrent matmul of this step
            torch.sigmoid(pre, out=S_[t])  # all four gates in one pass
            g2 = torch.add(minus2, Sg[t], alpha=4.0, out=G2_[t])  # 2g = 2(2σ(2z) - 1)
            c2 = torch.mul(Sf[t], C2_[t], out=C2_[t + 1])  # 2c_t = f ⊙ 2c_{t-1}
            c2.addcmul_(Si[t], g2)  #                            + i ⊙ 2g
            tc = torch.sigmoid(c2, out=TC_[t])
            torch.add(minus1, tc, alpha=2.0, out=tc)  # tanh(c_t) = 2σ(2c_t) - 1
            torch.mul(So[t], tc, out=Hs_[t + 1])  # h_t = o ⊙ tanh(c_t)
        ctx.save_for_backward(x, w_ih, w_hh, R, TC, Hs)
        return Hs[1:], Hs[T].clone(), C2_[T].mul(0.5)

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        x, w_ih, w_hh, R, TC, Hs = ctx.saved_tensors
        T, B, H = TC.shape
        scale8 = w_hh.new_ones(4 * H, 1)
        scale8[2 * H : 3 * H] = 8.0
        w8 = w_hh * scale8  # (4H, H)
        half = TC.new_full((B, H), 0.5)
        d_out = d_out.contiguous()
        dZ = TC.new_empty(T, B, 4 * H)  # dL/d(pre-activation), g block divided by 8
        dZ_, dZ3, dZo = dZ.unbind(0), dZ[:, :, : 3 * H].view(T, B, 3, H).unbind(0), dZ[:, :, 3 * H :].unbind(0)
        P_ = R[:, :, : 3 * H].view(T + 1, B, 3, H).unbind(0)
        S_, Sf, So = R[:, :, 2 * H :].unbind(0), R[:, :, 3 * H : 4 * H].unbind(0), R[:, :, 5 * H :].unbind(0)
        TC_, dout_ = TC.unbind(0), d_out.unbind(0)
        dh = d_hn + dout_[T - 1]
        delta = d_cn.mul(0.5)  # dL/d(2c)
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh = torch.addmm(dout_[t], dZ_[t + 1], w8)  # dL/dh_t
            tc = TC_[t]
            delta.addcmul_(dh * So[t], torch.addcmul(half, tc, tc, value=-0.5))  # += dh ⊙ o ⊙ (1 - tanh²c)/2
            # dL/di = dL/dc ⊙ g, dL/df = dL/dc ⊙ c_{t-1}, dL/dg / 8 = dL/dc ⊙ i / 8 (δ = dL/dc / 2, dg/dz = 4σ'(2z))
            torch.mul(delta.unsqueeze(1), P_[t], out=dZ3[t])
            torch.mul(dh, tc, out=dZo[t])  # dL/do = dh ⊙ tanh(c_t)
            s = S_[t]
            dZ_[t].mul_(torch.addcmul(s, s, s, value=-1.0))  # ⊙ σ' = σ(1 - σ)
            delta.mul_(Sf[t])  # dL/d(2c_{t-1})
        d_h0 = dZ_[0].mm(w8) if ctx.needs_input_grad[1] else None
        d_c0 = delta.mul(2.0) if ctx.needs_input_grad[2] else None
        dZ2 = dZ.view(T * B, 4 * H)
        d_w_ih = dZ2.t().mm(x.reshape(T * B, -1)).mul_(scale8)
        d_w_hh = dZ2.t().mm(Hs[:T].reshape(T * B, H)).mul_(scale8)
        d_b = dZ2.sum(0).mul_(scale8[:, 0])
        d_x = dZ2.mm(w_ih * scale8).view(T, B, -1) if ctx.needs_input_grad[0] else None
        return d_x, d_h0, d_c0, d_w_ih, d_w_hh, d_b, d_b


class _FusedPath:
    """The standard LSTM layer on lstmctl's C loops (_lstm_kernel.c, built by kernel.py).

    Whole sequence (`seq`, the default): forward is one C call that, per step, does the
    recurrent matmul with a small register-blocked GEMM and then all gates, the new cell and the
    new hidden state in one pass; backward is one C call that, per step, carries dL/dh back
    through W_hh (same GEMM) and dL/dc back through the forget gates, writing dL/d(pre-activation).
    Per step (`seq` False, for large layers on several threads): torch.addmm does the recurrent
    matmul (multi-threaded BLAS) and the C loop the gates. Either way the input projection of all
    steps and the weight gradients of all steps are one matrix product each, on the C GEMM unless
    torch's threaded BLAS is faster for it (_matmul). Buffers are allocated
    once per sequence and are contiguous: the C code receives raw pointers into them.
    """

    @staticmethod
    def forward(ctx, k, seq, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        T, B, I = x.shape
        H = w_hh.shape[1]
        want = {"w_ih": (4 * H, I), "w_hh": (4 * H, H), "b_ih": (4 * H,), "b_hh": (4 * H,), "h0": (B, H), "c0": (B, H)}
        for name, t in zip(want, (w_ih, w_hh, b_ih, b_hh, h0, c0)):
            if tuple(t.shape) != want[name]:  # the C loops trust these sizes: refuse, never read past an end
                raise RuntimeError(f"LSTM layer: {name} has shape {tuple(t.shape)}, expected {want[name]}")
        dtype = str(x.dtype).removeprefix("torch.")
        xw = _matmul(k, x.reshape(T * B, -1), w_ih.t(), b_ih + b_hh).view(T, B, 4 * H)
        A = x.new_empty(T, B, 4 * H)  # gate activations [σ(i), σ(f), tanh(g), σ(o)] per step
        C = x.new_empty(T + 1, B, H)  # c_0 .. c_T
        TC = x.new_empty(T, B, H)  # tanh(c_t)
        Hs = x.new_empty(T + 1, B, H)  # h_0 .. h_T; the output is Hs[1:]
        pre = x.new_empty(B, 4 * H)
        C[0] = c0
        Hs[0] = h0
        if seq:
            w_t = w_hh.t().contiguous()
            k.forward_seq[dtype](*_ptrs(x.dtype, xw, w_t, A, C, TC, Hs, pre), T, B, H)
        else:
            step, w_t, es = k.forward[dtype], w_hh.t(), x.element_size()
            sg, sh = B * 4 * H * es, B * H * es  # bytes per step of a (B, 4H) and a (B, H) block
            pA, pC, pTC, pH, ppre = _ptrs(x.dtype, A, C, TC, Hs, pre)
            xw_, Hs_ = xw.unbind(0), Hs.unbind(0)
            for t in range(T):
                torch.addmm(xw_[t], Hs_[t], w_t, out=pre)
                step(ppre, pC + t * sh, pA + t * sg, pC + (t + 1) * sh, pTC + t * sh, pH + (t + 1) * sh, B, H)
        ctx.save_for_backward(x, w_ih, w_hh, A, C, TC, Hs)
        return Hs[1:], Hs[T].clone(), C[T].clone()

    @staticmethod
    def backward(ctx, k, seq, d_out, d_hn, d_cn):
        x, w_ih, w_hh, A, C, TC, Hs = ctx.saved_tensors
        T, B, H = TC.shape
        dtype = str(x.dtype).removeprefix("torch.")
        d_out = d_out.contiguous()
        dZ = TC.new_empty(T, B, 4 * H)  # dL/d(pre-activation) per step
        dh = torch.add(d_out[T - 1], d_hn).contiguous()  # dL/dh_{T-1}
        dc = d_cn.contiguous().clone()  # dL/dc, carried backwards through the forget gates
        if seq:
            k.backward_seq[dtype](*_ptrs(x.dtype, d_out, w_hh.contiguous(), A, C, TC, dZ, dh, dc), T, B, H)
        else:
            step, es = k.backward[dtype], x.element_size()
            sg, sh = B * 4 * H * es, B * H * es
            pA, pC, pTC, pdZ, pdh, pdc = _ptrs(x.dtype, A, C, TC, dZ, dh, dc)
            dZ_, dout_ = dZ.unbind(0), d_out.unbind(0)
            for t in range(T - 1, -1, -1):
                if t < T - 1:
                    torch.addmm(dout_[t], dZ_[t + 1], w_hh, out=dh)  # dL/dh_t
                step(pdh, pdc, pA + t * sg, pTC + t * sh, pC + t * sh, pdZ + t * sg, B, H)
        d_h0 = dZ[0].mm(w_hh) if ctx.needs_input_grad[1] else None
        d_c0 = dc if ctx.needs_input_grad[2] else None
        dZ2 = dZ.view(T * B, 4 * H)
        # the weight gradients of all steps at once, computed transposed (the C GEMM wants the
        # long T*B dimension as its sum): dW^T = input^T dZ
        d_w_ih = _matmul(k, x.reshape(T * B, -1).t(), dZ2).t().contiguous()
        d_w_hh = _matmul(k, Hs[:T].reshape(T * B, H).t(), dZ2).t().contiguous()
        d_b = dZ2.sum(0)
        d_x = _matmul(k, dZ2, w_ih).view(T, B, -1) if ctx.needs_input_grad[0] else None
        return d_x, d_h0, d_c0, d_w_ih, d_w_hh, d_b, d_b


class _LSTMLayer(torch.autograd.Function):
    """Standard LSTM layer with a hand-written backward: the fused C path where it is available
    (CPU, float32/float64, a C compiler), else the pure-torch path. Both give nn.LSTM's results."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        ctx.kernel = None if torch.compiler.is_compiling() else _fused_kernel_for(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        if ctx.kernel is None:
            return _TorchPath.forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        ctx.seq = _c_is_faster(x.shape[1] * 4 * w_hh.shape[1] ** 2)
        return _FusedPath.forward(ctx, ctx.kernel, ctx.seq, x, h0, c0, w_ih, w_hh, b_ih, b_hh)

    @staticmethod
    @torch.autograd.function.once_differentiable  # a second derivative raises instead of being wrong
    def backward(ctx, d_out, d_hn, d_cn):
        if ctx.kernel is None:
            return _TorchPath.backward(ctx, d_out, d_hn, d_cn)
        return _FusedPath.backward(ctx, ctx.kernel, ctx.seq, d_out, d_hn, d_cn)


def _fused_kernel_for(*tensors):
    """The C kernel if these tensors can use it: plain tensors (not the fake ones torch.compile
    traces with), all on the CPU, all float32 or all float64, autocast off. Else None."""
    if not _c_kernel_applies(*tensors) or any(type(t) not in (torch.Tensor, torch.nn.Parameter) for t in tensors):
        return None
    return kernel.get()


def _c_kernel_applies(*tensors) -> bool:
    dtype = tensors[0].dtype
    if dtype not in (torch.float32, torch.float64) or _autocast_on("cpu"):
        return False  # (lstm_layer turns autocast off before it gets here)
    return all(t.device.type == "cpu" and t.dtype == dtype for t in tensors) and kernel.mode() != "torch"


def _ptrs(dtype, *tensors) -> list[int]:
    """Raw pointers for the C loops, after checking what they assume (a wrong pointer would not
    raise, it would corrupt memory): contiguous CPU tensors of the kernel's dtype."""
    for t in tensors:
        if not t.is_contiguous() or t.dtype != dtype or t.device.type != "cpu":
            raise RuntimeError(f"internal error: C kernel given a {t.dtype} {t.device} tensor, contiguous={t.is_contiguous()}")
    return [t.data_ptr() for t in tensors]


def _mm(k, a: torch.Tensor, w: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """c + a @ w on lstmctl's C GEMM. a: any 2-D strides (a transposed view costs no copy);
    w: (K, N), made row-contiguous if it is not; c: None, a bias (N,) or (M, N) rows contiguous."""
    M, K = a.shape
    N = w.shape[1]
    if a.dim() != 2 or w.dim() != 2 or w.shape[0] != K or (c is not None and tuple(c.shape) not in ((N,), (M, N))):
        raise RuntimeError(f"C GEMM: shapes do not fit: a {tuple(a.shape)}, w {tuple(w.shape)}, c {None if c is None else tuple(c.shape)}")
    if w.stride(1) != 1:
        w = w.contiguous()
    if c is not None and (c.stride(-1) != 1 or (c.dim() == 2 and c.shape != (M, N))):
        c = c.contiguous()
    out = a.new_empty(M, N)
    for t in (a, w, out) if c is None else (a, w, c, out):
        if t.dtype != a.dtype or t.device.type != "cpu":
            raise RuntimeError(f"internal error: C GEMM given a {t.dtype} {t.device} tensor")
    ldc = 0 if c is None or c.dim() == 1 else c.stride(0)
    k.gemm[str(a.dtype).removeprefix("torch.")](
        a.data_ptr(), a.stride(0), a.stride(1), w.data_ptr(), w.stride(0), None if c is None else c.data_ptr(), ldc, out.data_ptr(), N, M, N, K
    )
    return out


def _c_is_faster(macs: int) -> bool:
    """Whether lstmctl's single-threaded C GEMM should do a product of `macs` multiply-adds.

    On one or two threads it is the faster one (twice MKL's speed at LSTM shapes on the machine in
    docs/models.md). With more threads torch's BLAS splits large products across cores, so those go to
    torch; small ones gain nothing from threads. LSTMCTL_KERNEL_STEP=torch|c forces one way."""
    forced = os.environ.get("LSTMCTL_KERNEL_STEP", "").strip().lower()
    if forced in ("torch", "c"):
        return forced == "c"
    return torch.get_num_threads() <= 2 or macs < C_GEMM_BELOW


C_GEMM_BELOW = 1 << 20  # multiply-adds; with more than two threads, larger products go to torch


def _matmul(k, a: torch.Tensor, w: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """c + a @ w: lstmctl's GEMM where it pays (enough rows, columns in whole vector blocks), else torch."""
    M, K = a.shape
    N = w.shape[1]
    if M >= 8 and N >= 32 and N % 8 == 0 and _c_is_faster(M * N * K):
        return _mm(k, a, w, c)
    return a.mm(w) if c is None else torch.addmm(c, a, w)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know (meta, ...)
        return False


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """Standard LSTM over a (T, B, I) sequence -> (output (T, B, H), h_T, c_T)."""
    if _autocast_on(x.device.type):
        # mixed precision: the recurrence runs in float32 (its buffers are written with out=, which
        # autocast's lower-precision matmuls cannot fill; and c accumulates over every step);
        # float64 stays float64, as in nn.LSTM
        with torch.autocast(x.device.type, enabled=False):
            low = (torch.float16, torch.bfloat16)
            return lstm_layer(*(t.float() if t.dtype in low else t for t in (x, h0, c0, w_ih, w_hh, b_ih, b_hh)))
    if torch.compiler.is_compiling() and _c_kernel_applies(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        # torch.compile cannot look inside the C loops: leave the layer out of the graph and run
        # it eagerly on them (faster than anything compiled from the per-step Python on a CPU)
        return _outside_the_graph()(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    return _LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh)


_EAGER: list = []  # the layer wrapped in torch.compiler.disable, made on first use under torch.compile


def _outside_the_graph():
    """_LSTMLayer.apply marked for Dynamo to run eagerly. Made when first needed rather than with a
    decorator at import: torch.compiler.disable imports Dynamo, 1.5 s that no eager run should pay
    (every lstmctl command imports this module)."""
    if not _EAGER:
        _EAGER.append(torch.compiler.disable(_LSTMLayer.apply))
    return _EAGER[0]


def peephole_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    """LSTM with peephole connections (Gers & Schmidhuber 2000): the gates also see the cell.

        i = σ(W_i·[x, h_{t-1}] + b_i + w_ci ⊙ c_{t-1})
        f = σ(W_f·[x, h_{t-1}] + b_f + w_cf ⊙ c_{t-1})
        g = tanh(W_g·[x, h_{t-1}] + b_g)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        o = σ(W_o·[x, h_{t-1}] + b_o + w_co ⊙ c_t)      (the output gate sees the new cell)
        h_t = o ⊙ tanh(c_t)
    """
    T, B, _ = x.shape
    H = w_hh.shape[1]
    xw = torch.addmm(b_ih + b_hh, x.reshape(T * B, -1), w_ih.t()).view(T, B, 4 * H)
    w_cif = torch.cat([w_ci, w_cf])
    h, c = h0, c0
    outs = []
    for t in range(T):
        pre = torch.addmm(xw[t], h, w_hh.t())
        i_f = torch.sigmoid(pre[:, : 2 * H] + c.repeat(1, 2) * w_cif)
        g = torch.tanh(pre[:, 2 * H : 3 * H])
        c = torch.addcmul(i_f[:, H:] * c, i_f[:, :H], g)
        o = torch.sigmoid(torch.addcmul(pre[:, 3 * H :], c, w_co))
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), h, c


def coupled_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """Coupled input-forget gate LSTM (CIFG): one gate decides both, i = 1 - f.

    Three gates f, g, o (weights (3H, ·) in that order):
        f = σ(W_f·[x, h_{t-1}] + b_f);  g = tanh(W_g·[x, h_{t-1}] + b_g);  o = σ(W_o·[x, h_{t-1}] + b_o)
        c_t = f ⊙ c_{t-1} + (1 - f) ⊙ g = g + f ⊙ (c_{t-1} - g)
        h_t = o ⊙ tanh(c_t)
    """
    T, B, _ = x.shape
    H = w_hh.shape[1]
    xw = torch.addmm(b_ih + b_hh, x.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * H)
    h, c = h0, c0
    outs = []
    for t in range(T):
        pre = torch.addmm(xw[t], h, w_hh.t())
        s = torch.sigmoid(pre)
        f, o = s[:, :H], s[:, 2 * H :]
        g = torch.tanh(pre[:, H : 2 * H])
        c = torch.addcmul(g, f, c - g)
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), h, c


def gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh):
    """GRU exactly as nn.GRU defines it (gate order r, z, n):

        r = σ(W_ir x + b_ir + W_hr h + b_hr);   z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1} = n + z ⊙ (h_{t-1} - n)
    """
    T, B, _ = x.shape
    H = w_hh.shape[1]
    xw = torch.addmm(b_ih, x.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * H)
    h = h0
    outs = []
    for t in range(T):
        hw = torch.addmm(b_hh, h, w_hh.t())
        rz = torch.sigmoid(xw[t, :, : 2 * H] + hw[:, : 2 * H])
        n = torch.tanh(torch.addcmul(xw[t, :, 2 * H :], rz[:, :H], hw[:, 2 * H :]))
        h = torch.addcmul(n, rz[:, H:], h - n)
        outs.append(h)
    return torch.stack(outs), h
