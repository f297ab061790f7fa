"""Capture the spikes and gradients of a fixed matrix of eqsnn cases; compare two captures.

This is for verifying that a refactor of eqsnn's internals does not change its numerics:
capture at the commit before the refactor and at the one after, then compare (the default
threshold is bit-identical):

    python -m benchmarks.equivalence capture OUT.npz
    python -m benchmarks.equivalence compare A.npz B.npz [--ulps N]

Only the public API is used (the layer classes and their constructor keywords), so the
same script runs on both sides. Every case runs in float64 and float32 (weights drawn in
float64, then cast). Per case and dtype the npz holds `<case>/<dtype>/out_time`, `out_idx`,
`out_current`, `out_dropped`, `loss`, `grad_input_time` (and `grad_input_current` where the
layer gives one) and one `grad<path>` per inexact leaf of the model gradient (e.g.
`grad.weights.input`). The loss is a fixed weighted sum of the valid output times and
currents. `meta/*` holds the eqsnn commit and the versions; it is not compared.
"""

import argparse
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import eqsnn  # noqa: E402
from eqsnn.hardware import SoftwareBackend  # noqa: E402

T_MAX, IN, N_INPUT = 0.05, 6, 20
RATIO1 = dict(tau_syn=1e-2, tau_mem=1e-2, v_reset=-0.2)  # LambertW solver, negative reset


def ff(cls, out=5, n_spikes=30, mean=0.4, std=0.3, params=None, **kw):
    def build(key):
        p = None if params is None else eqsnn.LIFParameters(**params)
        return cls(IN, out, n_spikes, T_MAX, p, key=key, mean=mean, std=std, **kw)

    return build


def rec(cls, layers=(6, 3), n_spikes=40, mean=0.4, std=0.3, params=None, extra=None, **kw):
    """`extra`: a boolean (n, n) array; adds N(0, 0.15^2) recurrent weights where it is True."""

    def build(key):
        k_init, k_extra = jax.random.split(key)
        p = None if params is None else eqsnn.LIFParameters(**params)
        layer = cls(IN, list(layers), n_spikes, T_MAX, p, key=k_init, mean=mean, std=std, **kw)
        if extra is None:
            return layer
        w = layer.weights.recurrent
        w = jnp.where(extra, w + 0.15 * jax.random.normal(k_extra, w.shape, w.dtype), 0.0)
        return eqx.tree_at(lambda m: m.weights.recurrent, layer, w)

    return build


def seq(cls):
    def build(key):
        k1, k2 = jax.random.split(key)
        first = cls(IN, 8, 40, T_MAX, key=k1, mean=0.4, std=0.3)
        return eqx.nn.Sequential([first, cls(8, 4, 20, T_MAX, key=k2, mean=0.4, std=0.3)])

    return build


def cases():
    rng = np.random.default_rng(0)
    mask = eqsnn.ConnectivityMask(rng.random((IN, 9)) < 0.7, rng.random((9, 9)) < 0.3)
    full = np.ones((9, 9), bool)
    count = dict(overflow=eqsnn.Overflow.COUNT)
    out = {}
    for name, cls in (("lif", eqsnn.LIF), ("eventprop", eqsnn.EventPropLIF)):
        out[f"{name}/default"] = ff(cls)
        for b in (1, 3):
            out[f"{name}/per_neuron{b}"] = ff(cls, max_spikes_per_neuron=b)
        for b in (1, 2):
            out[f"{name}/per_interval{b}"] = ff(cls, max_spikes_per_interval=b)
        out[f"{name}/ratio1_reset"] = ff(cls, params=RATIO1, mean=0.25)
        out[f"{name}/dropped"] = ff(cls, n_spikes=4, **count)
        out[f"{name}/dropped_per_neuron1"] = ff(cls, max_spikes_per_neuron=1, **count)
    for b in (1, 2):
        out[f"eventprop/wrap_per_interval{b}"] = ff(
            eqsnn.EventPropLIF, wrap_only_step=True, max_spikes_per_interval=b
        )
    for name, cls in (("rlif", eqsnn.RecurrentLIF), ("reventprop", eqsnn.RecurrentEventPropLIF)):
        out[f"{name}/layered"] = rec(cls)
        out[f"{name}/full"] = rec(cls, connectivity=eqsnn.Connectivity.FULL, extra=full)
        out[f"{name}/mask"] = rec(cls, connectivity=mask, extra=mask.recurrent)
        out[f"{name}/layered_per_neuron2"] = rec(cls, max_spikes_per_neuron=2)
        out[f"{name}/layered_per_neuron3_1"] = rec(cls, max_spikes_per_neuron=(3, 1))
        out[f"{name}/ratio1_reset"] = rec(cls, params=RATIO1, mean=0.25)
        out[f"{name}/dropped"] = rec(cls, n_spikes=6, **count)
    for conn in ("layered", "full"):
        connectivity = eqsnn.Connectivity[conn.upper()]
        out[f"reventprop/wrap_{conn}"] = rec(
            eqsnn.RecurrentEventPropLIF,
            connectivity=connectivity,
            wrap_only_step=True,
            extra=full if conn == "full" else None,
        )
    out["hardware/lif"] = ff(eqsnn.HardwareLIF, backend=SoftwareBackend())
    out["hardware/recurrent"] = rec(eqsnn.HardwareRecurrentLIF, backend=SoftwareBackend())
    out["sequential/lif"] = seq(eqsnn.LIF)
    out["sequential/eventprop"] = seq(eqsnn.EventPropLIF)
    return out


def input_spikes(key, dtype):
    """N_INPUT spikes before 0.8 t_max on IN inputs, unsorted, plus one empty slot."""
    k_t, k_i = jax.random.split(key)
    t = jax.random.uniform(k_t, (N_INPUT,), jnp.float64, 0.0, 0.8 * T_MAX)
    i = jax.random.randint(k_i, (N_INPUT,), 0, IN, jnp.int32)
    t = jnp.concatenate([t, jnp.array([2.0 * T_MAX])]).astype(dtype)
    i = jnp.concatenate([i, jnp.array([-1], jnp.int32)])
    return eqsnn.Spikes(time=t, idx=i, current=jnp.zeros_like(t))


def loss_fn(diff):
    model, spikes = diff
    out = model(spikes)
    c = jnp.linspace(1.0, 2.0, out.time.shape[-1], dtype=out.time.dtype)
    terms = 100.0 * c * out.time + (1.5 - c) * out.current
    return jnp.sum(jnp.where(out.valid, terms, 0.0))


def run_case(build, name, dtype):
    key = jax.random.PRNGKey(zlib.crc32(name.encode()))
    k_model, k_input = jax.random.split(key)
    cast = lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x  # noqa: E731
    model = jax.tree.map(cast, build(k_model))
    spikes = input_spikes(k_input, dtype)
    out = model(spikes)
    loss, (g_model, g_in) = eqx.filter_value_and_grad(loss_fn)((model, spikes))
    res = dict(out_time=out.time, out_idx=out.idx, out_current=out.current)
    res.update(out_dropped=out.dropped, loss=loss, grad_input_time=g_in.time)
    if g_in.current is not None:
        res["grad_input_current"] = g_in.current
    for path, leaf in jax.tree_util.tree_flatten_with_path(g_model)[0]:
        res["grad" + jax.tree_util.keystr(path)] = leaf
    return {k: np.asarray(v) for k, v in res.items()}


def git_commit() -> str:
    root = Path(eqsnn.__file__).resolve().parent
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "."], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (eqsnn/ modified)" if dirty.stdout.strip() else "")


def capture(path: str) -> int:
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", eqsnn.SpikesDroppedWarning)
    data = {"meta/commit": np.array(git_commit()), "meta/eqsnn_file": np.array(eqsnn.__file__)}
    data["meta/versions"] = np.array(f"jax {jax.__version__}, equinox {eqx.__version__}")
    start = time.perf_counter()
    for name, build in cases().items():
        for dtype in (jnp.float64, jnp.float32):
            t0 = time.perf_counter()
            res = run_case(build, name, dtype)
            dname = jnp.dtype(dtype).name
            data.update({f"{name}/{dname}/{k}": v for k, v in res.items()})
            n, drop = int((res["out_idx"] >= 0).sum()), int(res["out_dropped"])
            bad = sum(int((~np.isfinite(v)).sum()) for k, v in res.items() if "grad" in k)
            sec = time.perf_counter() - t0  # compile time included
            print(f"{name:30s} {dname} spikes {n:3d} dropped {drop:2d} nonfinite {bad} {sec:.1f}s")
    np.savez(path, **data)
    print(f"{data['meta/commit']}: {len(data) - 3} arrays in {time.perf_counter() - start:.1f}s")
    return 0


def ulps(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference in units in the last place (inf for a structural difference)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return np.inf
    if not np.issubdtype(a.dtype, np.floating):
        return 0.0 if np.array_equal(a, b) else np.inf
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return 0.0
    a, b = a[~same], b[~same]
    if not (np.isfinite(a) & np.isfinite(b)).all():
        return np.inf
    return float(np.max(np.abs(a - b) / np.spacing(np.maximum(np.abs(a), np.abs(b)))))


def compare(path_a: str, path_b: str, threshold: float) -> int:
    a, b = np.load(path_a), np.load(path_b)
    for p, f in ((path_a, a), (path_b, b)):
        print(f"{p}: {f['meta/commit']} ({f['meta/versions']})")
    keys_a = {k for k in a.files if not k.startswith("meta/")}
    keys_b = {k for k in b.files if not k.startswith("meta/")}
    missing = sorted(keys_a ^ keys_b)
    for k in missing:
        print(f"MISSING in {path_b if k in keys_a else path_a}: {k}")
    results = {}
    for k in sorted(keys_a & keys_b):
        x, y = a[k], b[k]
        u = ulps(x, y)
        results[k] = u
        if u == 0:
            print(f"{k:64s} identical")
        elif x.shape != y.shape or x.dtype != y.dtype:
            print(f"{k:64s} {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
        else:
            with np.errstate(invalid="ignore"):
                diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
            diff = np.where((x == y) | (np.isnan(x) & np.isnan(y)), 0.0, diff)
            print(f"{k:64s} max abs diff {np.max(diff):.3e}  max ulps {u:.3g}")
    n = len(results)
    worst = max(results, key=results.get) if results else None
    print(f"\n{n} arrays compared, {len(missing)} missing on one side")
    for label, limit in (("bit-identical", 0), ("within 1 ulp", 1), ("within 4 ulp", 4)):
        print(f"  {label:14s} {sum(u <= limit for u in results.values())}/{n}")
    if worst is not None and results[worst] > 0:
        print(f"  worst: {worst} ({results[worst]:.3g} ulps)")
    ok = not missing and all(u <= threshold for u in results.values())
    print("PASS" if ok else "FAIL", f"(threshold {threshold:g} ulps)")
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("capture").add_argument("out")
    cmp = sub.add_parser("compare")
    cmp.add_argument("a")
    cmp.add_argument("b")
    cmp.add_argument("--ulps", type=float, default=0.0, help="allowed ulps (default 0)")
    args = parser.parse_args(argv)
    if args.cmd == "capture":
        return capture(args.out)
    return compare(args.a, args.b, args.ulps)


if __name__ == "__main__":
    sys.exit(main())
