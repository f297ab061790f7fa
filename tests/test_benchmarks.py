"""Smoke tests of the benchmark driver `benchmarks.run`: its eqsnn part in a tiny
configuration, a missing peer reported as skipped, and the RESULTS.md merge."""

import importlib.util
import math
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run():
    """`benchmarks.run`, imported from the repository root (not an installed package)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        from benchmarks import run

        yield run


@pytest.fixture(scope="module")
def _measure(run):
    """`benchmarks._measure` (imported once `run` has set up the path)."""
    from benchmarks import _measure

    return _measure


def _unavailable(batch, hidden, regime, budgets):
    from benchmarks.peers import PeerUnavailable

    raise PeerUnavailable("import notapeer failed: ModuleNotFoundError")


@pytest.mark.standard_promotion
def test_eqsnn_part_and_missing_peer(run):
    """The driver's eqsnn part runs (float32, as the benchmark) and a missing peer is skipped."""
    specs = [spec for spec in run.SPECS if spec.name == "eqsnn LIF"]
    specs.append(run.Spec("notapeer", _unavailable))
    if importlib.util.find_spec("jaxsnn") is None:
        specs += [spec for spec in run.SPECS if spec.name.startswith("jaxsnn")]
    with jax.enable_x64(False):
        records = run.measure(specs, batch=2, hidden_sizes=[3], n_runs=1)
    by_case = {record["case"]: record for record in records}
    assert "failed" not in by_case["eqsnn LIF"], by_case["eqsnn LIF"]["failed"]
    eqsnn = by_case["eqsnn LIF"]
    assert eqsnn["fwd_s"] > 0 and eqsnn["fwd_grad_s"] > 0 and eqsnn["compile_grad_s"] > 0
    assert eqsnn["dropped"] == 0 and eqsnn["max_abs_dt_s"] == 0.0
    assert eqsnn["grad_rel_diff"] == 0.0
    assert math.isfinite(eqsnn["loss"])
    # XLA's buffer assignment of both executables: arguments + outputs + temporaries - aliased
    parts = eqsnn["memory_grad_analysis"]
    assert eqsnn["memory_fwd_bytes"] > 0 and parts["argument"] > 0 and parts["output"] > 0
    total = parts["argument"] + parts["output"] + parts["temp"] - parts["alias"]
    assert eqsnn["memory_grad_bytes"] == total > eqsnn["memory_fwd_bytes"]
    assert by_case["notapeer"]["skipped"].startswith("import notapeer failed")
    for name, record in by_case.items():
        if name.startswith("jaxsnn"):
            assert "import jaxsnn failed" in record["skipped"]
    table = run.peers_section(records, "machine info")
    assert "| notapeer | skipped: import notapeer failed" in table
    assert "| eqsnn LIF | " in table and "### one spike per neuron, hidden 3" in table
    assert "| XLA memory fwd / grad (MiB) |" in table and "RSS above baseline" not in table
    assert "skipped" in run.scaling_section(records)


def test_too_slow_is_reported(_measure):
    record = {
        "hidden": 100,
        "compile_fwd_s": 1.0,
        "compile_grad_s": 1.0,
        "fwd_s": 0.1,
        "fwd_grad_s": 0.2,
    }
    assert _measure._too_slow(record, "hidden", 200, n_runs=20, budget_s=100.0) is None
    reason = _measure._too_slow(record, "hidden", 800, n_runs=20, budget_s=100.0)
    assert reason.startswith("too slow (> 100 s") and "from hidden 100" in reason


def test_merge_keeps_other_sections(run):
    text = "# Benchmark results\n\n## Training\n\nkept\n\n## Scaling\n\nold\n"
    merged = run.merge_sections(text, {run.PEERS_TITLE: "peers", run.SCALING_TITLE: "new"})
    assert "## Training\n\nkept" in merged and "## Scaling\n\nnew" in merged
    assert "old" not in merged and f"## {run.PEERS_TITLE}\n\npeers" in merged
    assert merged.startswith("# Benchmark results")
    assert run.merge_sections(merged, {run.SCALING_TITLE: "new"}) == merged


def _record(case, regime, hidden, seconds, **extra):
    return {
        "case": case,
        "regime": regime,
        "hidden": hidden,
        "compile_fwd_s": 1.0,
        "compile_grad_s": 2.0,
        "fwd_s": seconds,
        "fwd_grad_s": 2 * seconds,
        "memory_fwd_bytes": 2**20,
        "memory_grad_bytes": None,
        "loss": 0.5,
        **extra,
    }


def test_report_ratios_and_growth(run):
    """Ratios divide by the eqsnn reference; the growth exponent is the log-log slope."""
    records = [
        _record("eqsnn LIF", "single", 100, 0.01, dropped=0),
        _record("jaxsnn LIF", "single", 100, 0.05),
        _record("eqsnn LIF", "single", 200, 0.02, dropped=0),
        {"case": "jaxsnn LIF", "regime": "single", "hidden": 200, "skipped": "too slow (> 1 s"},
        _record("eqsnn LIF", "budget", 100, 0.01, budget_scale=1, budgets={"hidden_spikes": 9}),
        _record("eqsnn LIF", "budget", 100, 0.04, budget_scale=4, budgets={"hidden_spikes": 36}),
    ]
    table = run.peers_section(records, "info")
    assert "| jaxsnn LIF | 1.0 / 2.0 | 50 | 100 | 5 | 5 | 1 / n/a |" in table
    assert "### multi-spike (v_reset = 0), spike budgets scaled, hidden 100, budgets ×4" in table
    assert "hidden_spikes = 36" in table
    scaling = run.scaling_section(records)
    assert "| eqsnn LIF | 20 (1×) | 40 (1×) | 1.00 |" in scaling
    assert "| jaxsnn LIF | 100 (5×) | too slow | n/a |" in scaling
    assert "| budgets ×1 | budgets ×4 |" in scaling


def test_sharding_write_replaces_only_its_platform(run, tmp_path):
    from benchmarks import sharding

    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Training\n\nkept\n")
    sharding.write_results("cpu", "cpu one", path)
    sharding.write_results("gpu", "gpu one", path)
    sharding.write_results("cpu", "cpu two", path)
    text = path.read_text()
    assert "## Training\n\nkept" in text and "cpu one" not in text
    cpu, gpu = (f"### {sharding.PLATFORM_TITLES[p]}" for p in ("cpu", "gpu"))
    assert f"{cpu}\n\ncpu two" in text and f"{gpu}\n\ngpu one" in text
    assert text.index(cpu) < text.index(gpu) and text.count(f"## {sharding.TITLE}") == 1


@pytest.mark.standard_promotion
def test_floor_computes_the_same_spikes_and_gradients_as_eqsnn(run):
    """The floor (`benchmarks.floor`) simulates the benchmark network: its output first
    spike times equal eqsnn `LIF`'s (float32: 1e-6 s on a 20 ms window, the crossing
    solves differ in rounding) and so do its weight gradients (2e-4 relative: float32
    adjoints summed in another order); multi-spike is refused, not timed."""
    import numpy as np

    from benchmarks import eqsnn_cases as ec
    from benchmarks import floor
    from benchmarks.peers import PeerUnavailable

    case = floor.floor_yinyang(batch=8, hidden=16)
    reference = ec.eqsnn_yinyang(batch=8, hidden=16, kind=ec.EqsnnLayer.LIF)
    mine = np.asarray(case.forward(*case.forward_args))
    theirs = np.asarray(reference.forward(*reference.forward_args))
    assert np.array_equal(mine < 0.02, theirs < 0.02)  # the same neurons spike
    np.testing.assert_allclose(mine, theirs, atol=1e-6)
    loss, grads = case.value_and_grad(*case.grad_args)
    loss_ref, grads_ref = reference.value_and_grad(*reference.grad_args)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    for g, g_ref in zip(grads, ec._feedforward_weight_grads((loss_ref, grads_ref)), strict=True):
        scale = np.max(np.abs(np.asarray(g_ref)))
        np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=2e-4 * scale)
    with pytest.raises(PeerUnavailable, match="one spike per neuron"):
        floor.floor_yinyang(batch=8, hidden=16, multi_spike=True)


def test_too_slow_extrapolates_the_calls_not_the_compile_time(_measure):
    """A case dominated by its compile time is not skipped at 4x the size (the calls grow
    16x, the compile time stays); one dominated by its calls is."""
    n_runs, warm = 10, _measure.N_WARMUP
    compile_heavy = _record("gpu case", "single", 100, 0.001)  # compile 3 s, calls tiny
    assert _measure._too_slow(compile_heavy, "hidden", 400, n_runs, 10.0) is None
    calls = (warm + n_runs) * 3 * 0.01
    call_heavy = _record("slow case", "single", 100, 0.01)
    reason = _measure._too_slow(call_heavy, "hidden", 400, n_runs, 3.0 + 16 * calls - 0.1)
    assert reason is not None and reason.startswith("too slow (> ")
    assert _measure._too_slow(call_heavy, "hidden", 400, n_runs, 3.0 + 16 * calls + 0.1) is None


def test_headline_holds_the_reference_against_jaxsnn_and_the_floor(run):
    from benchmarks import _report

    records = [
        _record("eqsnn EventPropLIF", "single", 100, 0.002),
        _record("jaxsnn EventProp", "single", 100, 0.02),
        _record("floor (vectorised closed form)", "single", 100, 0.001),
    ]
    table = _report.point_table(records)
    assert "eqsnn EventPropLIF is 10.00x faster than jaxsnn EventProp forward+gradient" in table
    assert "eqsnn EventPropLIF takes 2.00x the floor's time forward+gradient" in table
    assert _report.headline(records[:1], _report.reference_record(records)) == []


@pytest.mark.slow  # two compilations of a vmapped two-layer gradient: ~15-30 s on 2 cores
@pytest.mark.standard_promotion
def test_features_benchmark_prints_the_variants(run, capsys):
    """`benchmarks.features` (issue 17) in a tiny configuration, with `--variants d`: the
    reference (a) and (d), which has every feature of (b) and (c), one row each, each
    timed, finding (a)'s spikes (float32: 1e-6 s on a 20 ms window, the bracketed solver
    rounds otherwise than the closed form) and dropping none. By default all four run."""
    from benchmarks import features

    with jax.enable_x64(False):
        records = features.main(
            ["--hidden", "8", "--batch", "4", "--runs", "1", "--gradients", "eventprop"]
            + ["--variants", "d"]
        )
    run_variants = [features.Variant.TODAY, features.Variant.ALL]
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| (")]
    assert [row.split(" | ")[0] for row in rows] == [f"| {v.value}" for v in run_variants]
    assert "both with t_ref" in out and "per-synapse delays" not in out
    assert len(records) == 2
    for record in records:
        assert record["step_s"] > 0 and record["compile_s"] > 0 and record["dropped"] == 0
        assert record["max_abs_dt_s"] <= 1e-6 and record["spike_mismatch"] == 0


def test_features_benchmark_variants_option(run):
    """`--variants`: all four by default, (a) always, unknown letters refused; the table
    and headline show every variant run."""
    from benchmarks import features

    Variant = features.Variant
    assert features._parse([]).variants == tuple(Variant)
    assert features._parse(["--variants", "c,b"]).variants == tuple(Variant)[:3]
    assert features._parse(["--variants", "a"]).variants == (Variant.TODAY,)
    with pytest.raises(ValueError, match=r"unknown variants \['e'\]"):
        Variant.parse("d,e")
    records = [
        {
            "variant": v.value,
            "gradient": "EventProp",
            "solver": "TTFSSolver",
            "step_s": 1e-3 * (k + 1),
            "step_min_s": 1e-3 * (k + 1),
            "ratio": k + 1.0,
            "ratio_min": k + 1.0,
            "compile_s": 1.0,
            "max_abs_dt_s": 0.0,
            "spike_mismatch": 0,
            "grad_rel_diff": 0.0,
            "dropped": 0,
        }
        for k, v in enumerate(Variant)
    ]
    rows = [line for line in features.table(records).splitlines() if line.startswith("| (")]
    assert [row.split(" | ")[0] for row in rows] == [f"| {v.value}" for v in Variant]
    assert features.headline(records, hidden=8, batch=4).endswith(
        "EventProp: per-neuron parameters 2.00x, per-synapse delays 3.00x, both with t_ref 4.00x."
    )


def test_short_preset_selects_the_headline_cases(run):
    """`--short` (the GPU preset) parses to one-spike hidden 100 and 400, 10 runs, the cases
    `SHORT_CASES` (every one a case of `SPECS`), and refuses `--write`; `--only` wins."""
    args = run._parse(["--short", "--json", "s.json", "--markdown", "s.md"])
    assert (args.hidden, args.multi_hidden, args.budget_scales) == ((100, 400), (), ())
    assert args.runs == 10 and not args.memory_rss and args.markdown == Path("s.md")
    names = [spec.name for spec in run.select_specs(args)]
    assert sorted(names) == sorted(run.SHORT_CASES) and len(names) == 5
    assert {"eqsnn EventPropLIF", "jaxsnn EventProp", "eqsnn LIF"} <= set(names)
    assert any(name.startswith("floor") for name in names)
    assert any(name.startswith("eqsnn Recurrent") for name in names)
    only = run.select_specs(run._parse(["--short", "--only", "jaxsnn"]))
    assert [spec.name for spec in only] == ["jaxsnn LIF", "jaxsnn EventProp"]
    assert len(run.select_specs(run._parse([]))) == len(run.SPECS)
    with pytest.raises(SystemExit):
        run._parse(["--short", "--write"])


def test_memory_columns_shown_when_measured(run):
    """The process-memory columns appear only when a record has them, in MiB."""
    from benchmarks import _report

    plain = [_record("eqsnn EventPropLIF", "single", 100, 0.002)]
    assert "RSS above baseline" not in _report.point_table(plain)
    measured = plain + [
        _record("jaxsnn EventProp", "single", 100, 0.02)
        | {"rss_peak_bytes": 3 * 2**20, "rss_calls_bytes": 2**19},
        {"case": "eventax EventProp", "regime": "single", "hidden": 100, "skipped": "no"},
    ]
    lines = _report.point_table(measured).splitlines()
    assert lines[0].endswith("| RSS above baseline: peak / during calls (MiB) |")
    assert lines[1].count("---") == 13 and "device peak" not in lines[0]
    assert lines[2].endswith("| n/a / n/a |") and lines[3].endswith("| 3 / 0.5 |")
    assert lines[4].count("|") == lines[0].count("|")


def test_rss_peak_can_be_reset(run):
    """`benchmarks._memory`'s peak counter sees a 64 MiB allocation and forgets it after a
    reset (Linux `clear_refs`; where the counter cannot be reset the test is skipped)."""
    import numpy as np

    from benchmarks import _memory

    if _memory.reset_peak() is None:
        pytest.skip("the peak RSS cannot be reset on this system")
    before = _memory.peak_rss()
    block = np.ones(2**23)  # 64 MiB, every page touched
    grown = _memory.peak_rss() - before
    del block
    current = _memory.reset_peak()
    assert grown >= 60 * 2**20  # a few pages of the block may have been resident before
    assert _memory.peak_rss() < before + grown - 32 * 2**20 and current is not None


@pytest.mark.standard_promotion
def test_memory_phases_of_a_tiny_case(run, _measure):
    """`benchmarks._memory.phases` builds, compiles and calls a case and reports every
    field. The toy's forward+gradient has 48 MiB of XLA temporaries (float64 (1024, 1024)
    matrices around a matrix product, which XLA cannot fuse away): XLA's figure counts them,
    and the RSS during the calls must grow by at least 0.9x that (the temporaries are one
    block above glibc's largest mmap threshold, 32 MiB, so each call maps fresh pages and
    writes all of them; 0.9: a few pages may be reused). A name that is not a case of
    `benchmarks.run` is refused without starting a process."""
    import jax.numpy as jnp

    from benchmarks import _memory
    from benchmarks.peers import PeerCase

    def loss(x):
        m = jnp.sin(jnp.outer(x, x))
        return jnp.sum(m @ m)

    def build(batch, hidden, regime, budgets):
        x = jnp.linspace(0.0, 1.0, 1024)
        grad = jax.jit(jax.value_and_grad(loss))
        return PeerCase("toy", jax.jit(loss), (x,), grad, (x,), {})

    fields = _memory.phases(run.Spec("toy", build), batch=2, hidden=3, regime="single")
    temp = _measure._compile(*build(2, 3, None, None)[3:5])[1]["memory_analysis"]["temp"]
    assert temp >= 48 * 2**20
    assert fields["rss_baseline_bytes"] > 0 and fields["rss_peak_bytes"] >= 0
    if fields["rss_calls_bytes"] is not None:  # the peak counter could be reset (Linux)
        assert fields["rss_calls_bytes"] >= 0.9 * temp and fields["rss_compile_bytes"] >= 0
    assert _memory.case_memory("toy", 2, 3, "single") == {
        "memory_rss_failed": "not a case of benchmarks.run"
    }


def test_recurrent_cases_hold_the_same_network(run):
    """The `--recurrent-hidden` sweep (`RECURRENT_SPECS`, full runs only): eqsnn's and
    jaxsnn's recurrent cases are built (not compiled: that costs seconds) with the same
    hidden -> hidden weights `peers.recurrent_weights` (deterministic), eqsnn's mask lets
    only the hidden neurons reach others, and jaxsnn's hidden budget counts every hidden
    spike twice (its emission and its delivery back through `syn3`)."""
    import numpy as np

    from benchmarks import eqsnn_cases as ec
    from benchmarks import peers

    assert run._parse([]).recurrent_hidden == run.DEFAULT_RECURRENT_HIDDEN
    assert run._parse(["--short"]).recurrent_hidden == ()
    only = run.select_recurrent_specs(run._parse(["--only", "jaxsnn"]))
    assert [spec.name for spec in only] == ["jaxsnn EventProp [recurrent]"]
    hidden = 6
    w_rec = peers.recurrent_weights(hidden)
    assert w_rec.dtype == np.float32 and np.array_equal(w_rec, peers.recurrent_weights(hidden))
    mask = ec.recurrent_connectivity(hidden)
    assert mask.recurrent[:hidden].all() and not mask.recurrent[hidden:].any()
    assert mask.input[:, :hidden].all() and not mask.input[:, hidden:].any()
    model = ec.eqsnn_recurrent_yinyang(batch=2, hidden=hidden).forward_args[0]
    np.testing.assert_array_equal(model.weights.recurrent[:hidden, :hidden], w_rec)
    if importlib.util.find_spec("jaxsnn") is not None:
        case = peers.jaxsnn_yinyang(2, hidden, recurrent=True)
        np.testing.assert_array_equal(case.forward_args[0]["syn3"], w_rec)
        assert case.name == "jaxsnn EventProp [recurrent]"
        assert case.meta["n_steps_hidden"] == peers.N_FEATURES * peers.DUPLICATION + 2 * hidden
