r"""Training: one optimiser step and an evaluation, as small functions.

eqsnn has no trainer class. A training loop is a Python `for` over
[`eqsnn.datasets.batches`][] that calls [`eqsnn.training.train_step`][] (or
[`eqsnn.training.train_epoch`][], one pass with the epoch's totals, lost spikes included);
the model is any Equinox module and the loss any function of one sample:

```python
def sample_loss(model, inputs, label):  # one sample, no batch axis
    ...
    return loss, aux  # a scalar, and a pytree of arrays to average (metrics)
```

The step averages `sample_loss` over the batch with `jax.vmap`, differentiates it with
`eqx.filter_value_and_grad` and applies an optax optimiser, all under one
`eqx.filter_jit`.

Data-parallel training over several devices (and hosts) takes one more argument, a
[`jax.sharding.Mesh`](https://docs.jax.dev/en/latest/sharding.html) from
[`eqsnn.training.data_parallel_mesh`][]: the batch is split over the devices, the model
and optimiser state are replicated, and the gradient is averaged over the devices by
JAX; see [Multiple devices and hosts](../howto/multi_device.md).

A trained model is saved with its structure by [`eqsnn.training.save`][], and
[`eqsnn.training.load`][] rebuilds it in any script, without the code that built it; see
[Saved models and checkpoints](../howto/checkpoint.md).

**Example:**

```python
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import eqsnn
from eqsnn import datasets, training

params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
key_hidden, key_out = jax.random.split(jax.random.key(0))
model = (
    eqsnn.LIF(5, 20, 20, 2e-2, params, key=key_hidden, mean=3.0, std=1.6),
    eqsnn.LIF(20, 2, 2, 2e-2, params, key=key_out, mean=0.5, std=0.8),
)


def sample_loss(model, inputs, label):
    spikes = eqsnn.encode.spatio_temporal_encode(inputs, 1e-2, t_bias=0.0)
    for layer in model:
        spikes = layer(spikes)
    loss = eqsnn.loss.ttfs_loss(spikes, label, 2, t_max=2e-2, tau_mem=1e-2)
    return loss, eqsnn.loss.accuracy(spikes, label, 2)


optimiser = optax.adam(1e-3)
opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
train = datasets.linear(jax.random.key(1), 64)
for batch in datasets.batches(train, 32, key=jax.random.key(2)):
    model, opt_state, loss, acc = training.train_step(
        model, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser
    )
loss, acc = training.evaluate(model, train, sample_loss=sample_loss, batch_size=32)
```
"""

from ._evaluate import evaluate as evaluate
from ._mesh import BATCH_AXIS as BATCH_AXIS
from ._mesh import data_parallel_mesh as data_parallel_mesh
from ._mesh import replicate as replicate
from ._mesh import shard_batch as shard_batch
from ._save import load as load
from ._save import load_hyperparameters as load_hyperparameters
from ._save import save as save
from ._step import Epoch as Epoch
from ._step import SampleLoss as SampleLoss
from ._step import batch_loss as batch_loss
from ._step import make_step as make_step
from ._step import train_epoch as train_epoch
from ._step import train_step as train_step
