r"""Export to and import from NIR, the Neuromorphic Intermediate Representation.

[NIR](https://neuroir.org) (PyPI `nir`) describes a spiking network as a graph of nodes
(`Input`, `Linear`, `CubaLIF`, `Output`, ...) that many simulators and chips read and
write. This sub-package needs the `nir` package: `pip install 'eqsnn[nir]'` (in a clone of
the repository: `pip install -e '.[nir]'`).

**The neuron.** NIR's `CubaLIF` node is

$$
\tau_\mathrm{syn}\dot I' = -I' + w_\mathrm{in} \odot x, \qquad
\tau_\mathrm{mem}\dot V = v_\mathrm{leak} - V + r \odot I',
$$

with reset to $v_\mathrm{reset}$ when $V$ crosses $v_\mathrm{threshold}$. Its input
$x = W_\mathrm{NIR}\, S$ comes from a `Linear` node, and a spike train is a sum of unit
Dirac deltas, $S_i(t) = \sum_k \delta(t - t_i^k)$. Integrating over one spike of input
$i$ shows that $I'_n$ jumps by $w_{\mathrm{in},n} W_{\mathrm{NIR}}[n, i] / \tau_{\mathrm{syn},n}$.
With $I = r \odot I'$ this is eqsnn's neuron (see [`eqsnn.LIFParameters`][]),
$\tau_\mathrm{mem}\dot V = v_\mathrm{leak} - V + I$, $\tau_\mathrm{syn}\dot I = -I$,
whose current jumps by $W[i, n]$, if and only if

$$
W[i, n] = \frac{r_n\, w_{\mathrm{in},n}}{\tau_{\mathrm{syn},n}}\, W_\mathrm{NIR}[n, i].
$$

[`eqsnn.nir.to_nir`][] writes $W_\mathrm{NIR} = W^\top$, $r = 1$ and
$w_\mathrm{in} = \tau_\mathrm{syn}$, so the weights are stored unchanged and the factor is
exactly one. [`eqsnn.nir.from_nir`][] applies the formula to any `CubaLIF`, so per-neuron
$r$ and $w_\mathrm{in}$ are folded into the weights. Times are in seconds, as everywhere
in eqsnn; voltages and currents keep their values.

**Per-neuron parameters and delays.** Every `CubaLIF` field holds one value per neuron,
so the per-neuron arrays of [`eqsnn.LIFParameters`][] map onto it exactly; the refractory
period `t_ref` has no NIR field and lives in eqsnn's node metadata (other NIR tools
ignore it). Synaptic delays map onto NIR's `Delay` node, $y_j(t) = x_j(t - d_j)$: per
source as a `Delay` before the weights, per synapse as one `Delay` channel per synapse
between a fan-out and the weights. [`eqsnn.nir.to_nir`][] and [`eqsnn.nir.from_nir`][]
say what maps and what does not; a round trip gives back the same layer, bit for bit.

**Other neuron models.** NIR's `IF` node, $\dot v = r I$, integrates its input without a
synaptic filter, so [`eqsnn.IFParameters`][] ($\tau_\mathrm{mem}\dot V = I$ with an
exponential synapse) is an `LI` node for the synapse (`tau` $= r = \tau_\mathrm{syn}$,
`v_leak` $= 0$, so that its state is $I$ and jumps by $W$) followed by an `IF` node with
`r` $= 1/\tau_\mathrm{mem}$: exact, for feed-forward layers, with `v_init = 0` (NIR has no
initial voltage). NIR has no node for an adaptive threshold: layers of
[`eqsnn.ALIFParameters`][] (and of other neuron models) are refused with a `ValueError`.
"""

from ._export import to_nir as to_nir
from ._import import from_nir as from_nir

__all__ = ["from_nir", "to_nir"]
