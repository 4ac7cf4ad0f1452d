"""Hand-built recurrent cells: the gate equations written out in lstmctl's own code.

Every function here runs one layer in one direction over a whole sequence, time-major:
x is (T, B, I), the states are (B, H), the weights use PyTorch's layout and gate order
(LSTM: i, f, g, o; GRU: r, z, n), so a state dict moves between these cells and nn.LSTM/nn.GRU.

Standard LSTM, one step (σ = sigmoid, ⊙ = elementwise product):
    [i, f, g, o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
    i, f, o = σ(·);  g = tanh(·)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

Speed: `lstm_layer` is an autograd.Function. Its forward makes one matmul for the input
projection of all T steps, then per step one matmul for the recurrent part and the gates in one
pass. Its backward is written out by hand: a short per-step loop that carries dh and dc back
through the recurrence, then the weight gradients of all steps in two matmuls. That avoids
recording a dozen autograd nodes per step, which is what makes a naive Python cell ~3x slower
than nn.LSTM on a CPU. The variants (peephole, coupled) and the GRU use plain autograd.
"""

from __future__ import annotations

import torch


class _LSTMLayer(torch.autograd.Function):
    """Standard LSTM layer with a hand-written backward.

    Inside, every per-step tensor is kept "feature-major", (H, B) instead of (B, H), so that each
    gate's block of the (4H, B) pre-activation matrix is contiguous and the elementwise kernels run
    on contiguous memory (strided slices of a (B, 4H) matrix cost 2-4x more on a CPU).
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        T, B, _ = x.shape
        H = w_hh.shape[1]
        # tanh(z) = 2σ(2z) - 1, and σ is several times faster than tanh on CPU. Scaling the g rows
        # of the weights by 2 is exact in floating point, so ONE sigmoid over all four gates
        # gives σ(i), σ(f), σ(2g), σ(o). The cell is carried doubled (c2 = 2c, also exact),
        # so tanh(c) = 2σ(c2) - 1 needs no extra multiply.
        scale = w_hh.new_ones(4 * H, 1)
        scale[2 * H : 3 * H] = 2.0
        w_hh2 = w_hh * scale
        # the input projection of every step in one matmul, both biases folded in
        xw = torch.addmm((b_ih + b_hh) * scale[:, 0], x.reshape(T * B, -1), (w_ih * scale).t())
        xw = xw.view(T, B, 4 * H).transpose(1, 2).contiguous()  # (T, 4H, B)
        acts = x.new_empty(T, 4 * H, B)  # activations of i, f, 2g, o at every step
        c2s = x.new_empty(T + 1, H, B)  # 2c_0 .. 2c_T
        hs = x.new_empty(T + 1, H, B)  # h_0 .. h_T
        tcs = x.new_empty(T, H, B)  # tanh(c_t)
        pre = x.new_empty(4 * H, B)  # one step's pre-activations
        minus2 = x.new_full((H, B), -2.0)
        minus1 = x.new_full((H, B), -1.0)
        torch.mul(c0.t(), 2.0, out=c2s[0])
        hs[0] = h0.t()
        for t in range(T):
            a = acts[t]
            torch.addmm(xw[t], w_hh2, hs[t], out=pre)  # the one recurrent matmul of this step
            torch.sigmoid(pre, out=a)  # all four gates in one pass
            g2 = a[2 * H : 3 * H]
            torch.add(minus2, g2, alpha=4.0, out=g2)  # 2g = 2(2σ(2z) - 1)
            c2 = c2s[t + 1]
            torch.mul(a[H : 2 * H], c2s[t], out=c2)  # 2c_t = f ⊙ 2c_{t-1}
            c2.addcmul_(a[:H], g2)  #                   + i ⊙ 2g
            tc = tcs[t]
            torch.sigmoid(c2, out=tc)
            torch.add(minus1, tc, alpha=2.0, out=tc)  # tanh(c_t) = 2σ(2c_t) - 1
            torch.mul(a[3 * H :], tc, out=hs[t + 1])  # h_t = o ⊙ tanh(c_t)
        acts[:, 2 * H : 3 * H] *= 0.5  # back to g
        cs = c2s.mul_(0.5)  # back to c
        ctx.save_for_backward(x, w_ih, w_hh, acts, cs, hs, tcs)
        out = hs[1:].transpose(1, 2).contiguous()  # (T, B, H)
        return out, hs[T].t().contiguous(), cs[T].t().contiguous()

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        x, w_ih, w_hh, acts, cs, hs, tcs = ctx.saved_tensors
        T, G, B = acts.shape
        H = G // 4
        i, f, g, o = acts.view(T, 4, H, B).unbind(1)
        # local derivatives of every step at once (vectorised over time)
        coef_c = torch.stack([g * i * (1 - i), cs[:-1] * f * (1 - f), i * (1 - g * g)], 1)  # dc -> d pre(i, f, g)
        coef_h = tcs * o * (1 - o)  # dh -> d pre(o)
        dc_from_h = o * (1 - tcs * tcs)  # dh -> dc
        f = f.contiguous()
        d_outT = d_out.transpose(1, 2).contiguous()  # (T, H, B)
        w_hh_t = w_hh.t()
        dG = acts.new_empty(T, G, B)  # gradient of the loss w.r.t. the pre-activations
        dG4 = dG.view(T, 4, H, B)
        dh = d_hn.t() + d_outT[T - 1]
        dc = d_cn.t().contiguous()
        for t in range(T - 1, -1, -1):
            dc.addcmul_(dh, dc_from_h[t])
            torch.mul(dc.unsqueeze(0), coef_c[t], out=dG4[t, :3])
            torch.mul(dh, coef_h[t], out=dG4[t, 3])
            dc.mul_(f[t])  # dc_{t-1}
            if t > 0:
                dh = torch.addmm(d_outT[t - 1], w_hh_t, dG[t])  # dh_{t-1}
            else:
                dh = w_hh_t.mm(dG[0])
        dG2 = dG.transpose(1, 2).reshape(T * B, G)
        d_x = dG2.mm(w_ih).view(T, B, -1) if ctx.needs_input_grad[0] else None
        d_w_ih = dG2.t().mm(x.reshape(T * B, -1))
        d_w_hh = dG2.t().mm(hs[:-1].transpose(1, 2).reshape(T * B, H))
        d_b = dG2.sum(0)
        return d_x, dh.t(), dc.t(), d_w_ih, d_w_hh, d_b, d_b


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """Standard LSTM over a (T, B, I) sequence -> (output (T, B, H), h_T, c_T)."""
    return _LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh)


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
