"""Data-parallel training over several processes (hosts) with `jax.distributed`.

Start one process per host (or per GPU), all with the same coordinator address (host and
a free port of process 0) and process count, and each with its own process id:

    python examples/multi_host.py --coordinator 10.0.0.1:12355 --num-processes 2 --process-id 0
    python examples/multi_host.py --coordinator 10.0.0.1:12355 --num-processes 2 --process-id 1

Without `--coordinator` it runs as a single process (on all of its local devices). Each
process loads the same data, takes its own part of every global batch, and gives it to
`eqsnn.training.shard_batch`; the model is initialised identically everywhere (same key)
and replicated. The losses printed by process 0 equal those of one process with the
same global batch. See docs/howto/multi_device.md.
"""

import argparse

import equinox as eqx
import jax
import numpy as np
import optax

import eqsnn
from eqsnn import datasets, training
from eqsnn.encode import spatio_temporal_encode
from eqsnn.loss import accuracy, ttfs_loss

PARAMS = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)


def sample_loss(model, inputs, label):
    spikes = spatio_temporal_encode(inputs, 1e-2)
    for layer in model:
        spikes = layer(spikes)
    loss = ttfs_loss(spikes, label, 2, t_max=2e-2, tau_mem=1e-2)
    return loss, accuracy(spikes, label, 2)


def main(argv=None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", help="host:port of process 0 (omit: one process)")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size")
    parser.add_argument("--epochs", type=int, default=1)
    cfg = parser.parse_args(argv)
    if cfg.batch_size % cfg.num_processes:
        parser.error(f"--batch-size {cfg.batch_size} is not divisible by --num-processes.")
    if cfg.coordinator is not None:  # before any other JAX call
        jax.distributed.initialize(cfg.coordinator, cfg.num_processes, cfg.process_id)
    rank, n_processes = jax.process_index(), jax.process_count()
    mesh = training.data_parallel_mesh()  # every device of every process

    k_hidden, k_out = jax.random.split(jax.random.key(0))  # the same model everywhere
    model = (
        eqsnn.LIF(5, 20, 20, 2e-2, PARAMS, key=k_hidden, mean=3.0, std=1.6),
        eqsnn.LIF(20, 2, 2, 2e-2, PARAMS, key=k_out, mean=0.5, std=0.8),
    )
    optimiser = optax.adam(1e-3)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
    model, opt_state = training.replicate((model, opt_state), mesh)
    step = training.make_step(sample_loss, optimiser, mesh=mesh)

    train = datasets.linear(jax.random.key(1), 256)
    local = cfg.batch_size // n_processes  # samples per process and step
    mine = np.arange(rank * local, (rank + 1) * local)
    losses = []
    key = jax.random.key(2)  # the same order on every process
    for batch in datasets.batches(train, cfg.batch_size, key=key, n_epochs=cfg.epochs):
        batch = training.shard_batch(batch.take(mine), mesh)  # this process's part
        model, opt_state, loss, acc = step(model, opt_state, batch)
        losses.append(float(loss))
        if rank == 0:
            print(f"step {len(losses):3d}  loss {losses[-1]:.6f}  accuracy {float(acc):.2f}")
    # Evaluation without a mesh: each process runs its local copy of the replicated model.
    loss, acc = training.evaluate(model, train, sample_loss=sample_loss)
    if rank == 0:
        print(f"training set: loss {loss:.6f}  accuracy {acc:.2%}")
    return losses


if __name__ == "__main__":
    main()
