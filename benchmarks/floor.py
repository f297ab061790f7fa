"""The floor: the minimal arithmetic of the Yin-Yang step, as plainly vectorised JAX.

```
python -m benchmarks.floor [--hidden 100,200] [--runs N] [--json PATH]
```

What any exact event-based simulator of the benchmark network (`benchmarks.peers`: batch
64, 5 features x 5 copies -> hidden -> 3, one spike per neuron, `tau_mem = 2 tau_syn`,
float32) has to compute, written without any event logic, spike buffer or budget:

- **forward, per layer:** sort the layer's input spikes (per sample); one closed-form
  state update per (input spike, neuron) pair, a `lax.scan` over the sorted inputs with
  the batch and the neurons as the vector dimensions (two exponentials per sample and
  step, shared by all neurons; three multiply-adds per neuron); a threshold test on the
  voltage just before each input; then **one** analytic crossing solve per neuron, in
  the interval where its voltage first stood above threshold (`tau_mem = 2 tau_syn`
  makes it a quadratic in `exp(-t / tau_mem)`), and after the last input one more solve
  from the analytic peak;
- **gradient:** `jax.value_and_grad` of the same code (the reverse scan over the stored
  states is the adjoint without events: one update per pair again, and the weight
  gradients gathered per input spike).

The floor is *optimistic*: a crossing whose voltage rises above threshold and falls
back between two input spikes is missed (it tests the voltage at input times and the
final peak only), and it never carries a spike past its budget because it has none. Its
first-spike times are checked against eqsnn `LIF` like every case of `benchmarks.run`
(`max abs dt`, spike mismatch, gradient difference), so how close it is shows in the
table.

`main` times `eqsnn LIF`, `eqsnn EventPropLIF` and the floor interleaved in one process
(`benchmarks._measure.measure`) and prints eqsnn's time as a multiple of the floor's; the
floor is also a case of `python -m benchmarks.run` (`--only floor,EventPropLIF`).
"""

import argparse
import datetime
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import eqsnn_cases as ec
from benchmarks import peers
from benchmarks._measure import Spec, measure
from benchmarks.peers import PeerCase, PeerUnavailable

NAME = "floor (vectorised closed form)"


def _layer_first_spikes(times, rows, params):
    """First spike time of every neuron of one layer, `(batch, n)` (`t_max`: silent).

    `times` `(batch, k)` are the layer's input spike times (any order; `t_max` or later:
    no spike) and `rows` `(batch, k, n)` the weights each input spike brings."""
    import jax
    import jax.numpy as jnp

    tau_mem, tau_syn, v_th, t_max = params
    order = jnp.argsort(times, axis=1)
    times = jnp.take_along_axis(times, order, axis=1)
    rows = jnp.take_along_axis(rows, order[..., None], axis=1)
    batch, n = rows.shape[0], rows.shape[2]
    kappa = tau_syn / (tau_mem - tau_syn)  # v(t) = a v0 + kappa (a - b) i0, b = a^2

    def step(carry, inputs):
        v, i, t_prev = carry
        t, row = inputs
        t = jnp.minimum(t, t_max)
        a = jnp.exp(-(t - t_prev) / tau_mem)[:, None]
        b = a * a  # exp(-dt / tau_syn) for tau_mem = 2 tau_syn
        v = a * v + kappa * (a - b) * i
        crossed = v >= v_th  # the voltage just before this input
        i = b * i + row
        return (v, i, t), (crossed, v, i, t)

    zeros = jnp.zeros((batch, n), rows.dtype)
    start = (zeros, zeros, jnp.zeros((batch,), rows.dtype))
    _, (crossed, vs, is_, ts) = jax.lax.scan(step, start, (times.T, jnp.moveaxis(rows, 1, 0)))
    # The interval of the first crossing: it starts at the input before the first input at
    # which the voltage stood above threshold (the state just after that input is the
    # previous step's `v`, `i`; before the first input everything is zero).
    k = crossed.shape[0]
    first = jnp.argmax(crossed, axis=0)  # (batch, n); 0 if never
    ever = jnp.any(crossed, axis=0)
    last = k - 1
    j = jnp.where(ever, jnp.maximum(first - 1, 0), last)
    v0 = jnp.take_along_axis(vs, j[None], 0)[0]
    i0 = jnp.take_along_axis(is_, j[None], 0)[0]
    t0 = ts[j, jnp.arange(batch)[:, None]]  # ts is (k, batch)
    return _cross(v0, i0, t0, kappa, tau_mem, v_th, t_max)


def _cross(v0, i0, t0, kappa, tau_mem, v_th, t_max):
    """Earliest `t > t0` with `a v0 + kappa (a - a^2) i0 = v_th`, `a = exp(-(t - t0) /
    tau_mem)` (a quadratic in `a`); `t_max` where the voltage never reaches threshold."""
    import jax.numpy as jnp

    c = kappa * i0
    p = v0 + c
    disc = p * p - 4.0 * c * v_th
    ok = (c > 0) & (disc >= 0)
    safe_c = jnp.where(ok, c, 1.0)
    a = (p + jnp.sqrt(jnp.where(ok, disc, 0.0))) / (2.0 * safe_c)
    ok = ok & (a > 0) & (a <= 1)
    t = t0 - tau_mem * jnp.log(jnp.where(ok, a, 1.0))
    return jnp.where(ok & (t < t_max), t, t_max)


def floor_yinyang(batch: int = 64, hidden: int = 100, multi_spike: bool = False) -> PeerCase:
    """The floor on the workload of `benchmarks.peers` (one spike per neuron only)."""
    if multi_spike:
        raise PeerUnavailable("the floor covers one spike per neuron only")
    import jax
    import jax.numpy as jnp

    work = peers.yinyang_workload(batch, hidden)
    params = (peers.TAU_MEM, peers.TAU_SYN, peers.V_TH, peers.T_MAX)
    if abs(peers.TAU_MEM - 2 * peers.TAU_SYN) > 1e-12:
        raise PeerUnavailable("the floor's closed form needs tau_mem = 2 tau_syn")
    in_times = jnp.asarray(np.repeat(work.feature_times, peers.DUPLICATION, axis=1))
    in_idx = jnp.asarray(np.repeat(np.arange(peers.N_FEATURES), peers.DUPLICATION))
    weights = (jnp.asarray(work.w_in), jnp.asarray(work.w_out))
    targets = jnp.asarray(work.target_times)

    def forward(weights, in_times):
        w_in, w_out = weights
        rows = jnp.broadcast_to(w_in[in_idx], (in_times.shape[0], *w_in[in_idx].shape))
        hidden_times = _layer_first_spikes(in_times, rows, params)
        rows = jnp.broadcast_to(w_out, (in_times.shape[0], *w_out.shape))
        out = _layer_first_spikes(hidden_times, rows, params)
        return jnp.where(out < peers.T_MAX, out, jnp.inf)  # silent: inf, as eqsnn's

    def loss(weights, in_times, targets):
        return peers.mse_first_spike_loss(forward(weights, in_times), targets)

    return PeerCase(
        name=NAME,
        forward=jax.jit(forward),
        forward_args=(weights, in_times),
        value_and_grad=jax.jit(jax.value_and_grad(loss)),
        grad_args=(weights, in_times, targets),
        meta={"weight_grads": lambda value_and_grad: value_and_grad[1]},
    )


def spec() -> Spec:
    """The floor as a case of `benchmarks.run`."""

    def build(batch, hidden, regime, budgets):
        return floor_yinyang(batch, hidden, regime.multi_spike)

    return Spec(NAME, build)


def _eqsnn(kind: ec.EqsnnLayer) -> Spec:
    def build(batch, hidden, regime, budgets):
        return ec.eqsnn_yinyang(batch, hidden, kind, regime.multi_spike, budgets)

    return Spec(ec.case_name(kind), build)


def ratios(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per hidden size: eqsnn's forward and forward+gradient times as multiples of the
    floor's (and the floor's spike check)."""
    rows = []
    for hidden in sorted({r["hidden"] for r in records}):
        at = {r["case"]: r for r in records if r["hidden"] == hidden}
        floor = at.get(NAME, {})
        if "fwd_grad_s" not in floor:
            continue
        for name, record in at.items():
            if name == NAME or "fwd_grad_s" not in record:
                continue
            rows.append(
                {
                    "hidden": hidden,
                    "case": name,
                    "fwd_x_floor": record["fwd_s"] / floor["fwd_s"],
                    "fwd_grad_x_floor": record["fwd_grad_s"] / floor["fwd_grad_s"],
                    "fwd_ms": 1e3 * record["fwd_s"],
                    "fwd_grad_ms": 1e3 * record["fwd_grad_s"],
                    "floor_fwd_ms": 1e3 * floor["fwd_s"],
                    "floor_fwd_grad_ms": 1e3 * floor["fwd_grad_s"],
                    "floor_max_dt_s": floor.get("max_abs_dt_s"),
                    "floor_spike_mismatch": floor.get("spike_mismatch"),
                    "floor_grad_rel_diff": floor.get("grad_rel_diff"),
                }
            )
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="100", help="hidden sizes, e.g. 100,200")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=50, help="timed calls per case")
    parser.add_argument("--json", type=Path, help="write the records and ratios here")
    args = parser.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    specs = (_eqsnn(ec.EqsnnLayer.LIF), _eqsnn(ec.EqsnnLayer.EVENTPROP), spec())
    records = measure(specs, args.batch, hidden, n_runs=args.runs, budget_s=1e9)
    rows = ratios(records)
    print(f"\nfloor benchmark, started {started}, load average {load[0]:.2f} {load[1]:.2f}")
    print(
        "| hidden | case | fwd (ms) | floor fwd (ms) | fwd x floor | fwd+grad (ms) | "
        "floor fwd+grad (ms) | fwd+grad x floor |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hidden']} | {r['case']} | {r['fwd_ms']:.3g} | {r['floor_fwd_ms']:.3g} | "
            f"{r['fwd_x_floor']:.2f} | {r['fwd_grad_ms']:.3g} | {r['floor_fwd_grad_ms']:.3g} "
            f"| {r['fwd_grad_x_floor']:.2f} |"
        )
    for r in {row["hidden"]: row for row in rows}.values():
        print(
            f"floor at hidden {r['hidden']} against eqsnn LIF: max |dt| "
            f"{r['floor_max_dt_s']}, spike mismatch {r['floor_spike_mismatch']}, gradient "
            f"rel. diff {r['floor_grad_rel_diff']}"
        )
    if args.json:
        payload = {"started": started, "load": load, "records": records, "ratios": rows}
        args.json.write_text(json.dumps(payload, default=str, indent=1))
    return rows


if __name__ == "__main__":
    main()
