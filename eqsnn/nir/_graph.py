"""The `nir` package and the structure of NIR graphs: supported nodes, recurrent loops and
the chain from the `Input` node to the `Output` node."""


def import_nir():
    """The `nir` package, or an ImportError that says how to install it."""
    try:
        import nir
    except ImportError:
        raise ImportError(
            "eqsnn.nir needs the `nir` package; install it with `pip install 'eqsnn[nir]'` "
            "(in a clone of the repository: `pip install -e '.[nir]'`)."
        ) from None
    return nir


def check_supported(nir, graph) -> None:
    """Refuse, by name, every node that eqsnn cannot express, and delays on a loop."""
    supported = (nir.Input, nir.Output, nir.Linear, nir.Affine, nir.Delay, nir.CubaLIF)
    supported += (nir.LI, nir.IF)
    bad = [
        f"{name!r} ({type(node).__name__})"
        for name, node in graph.nodes.items()
        if not isinstance(node, supported)
    ]
    if bad:
        raise ValueError(
            f"from_nir: unsupported node(s) {', '.join(bad)}; eqsnn imports chains of Input, "
            "Linear or Affine (zero bias), Delay, CubaLIF, LI → IF (IF neurons with their "
            "synapse) and Output nodes."
        )
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Delay) and _on_a_loop(graph, name):
            raise ValueError(
                f"from_nir: node {name!r} (Delay) is on a loop; eqsnn's recurrent layers have "
                "no delays yet."
            )
        if isinstance(node, nir.LI | nir.IF) and _on_a_loop(graph, name):
            raise ValueError(
                f"from_nir: node {name!r} ({type(node).__name__}) is on a loop; eqsnn imports "
                "IF neurons (LI → IF) in feed-forward layers only."
            )


def _on_a_loop(graph, start: str) -> bool:
    """Whether the edges lead from node `start` back to it."""
    seen, todo = set(), [start]
    while todo:
        pre = todo.pop()
        for post in (b for a, b in graph.edges if a == pre):
            if post == start:
                return True
            if post not in seen:
                seen.add(post)
                todo.append(post)
    return False


def recurrent_loops(nir, graph) -> dict[str, str]:
    """`{cuba_lif: weight}` for each weight node that a CubaLIF feeds back into itself."""
    loops = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Linear | nir.Affine):
            pre = [a for a, b in graph.edges if b == name]
            post = [b for a, b in graph.edges if a == name]
            looped = len(pre) == len(post) == 1 and pre == post
            if looped and isinstance(graph.nodes.get(pre[0]), nir.CubaLIF):
                loops[pre[0]] = name
    return loops


def chain(nir, graph, loops: dict[str, str]) -> list[str]:
    """The node names from the Input node to the Output node, recurrent loops set aside;
    the rest of the graph must be a chain."""
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"from_nir: the graph must have one Input and one Output node, got inputs "
            f"{inputs} and outputs {outputs}."
        )
    looped = {edge for cell, w in loops.items() for edge in ((cell, w), (w, cell))}
    successors: dict[str, list[str]] = {}
    predecessors: dict[str, list[str]] = {}
    for pre, post in graph.edges:
        if pre not in graph.nodes or post not in graph.nodes:
            raise ValueError(f"from_nir: edge {(pre, post)!r} names an unknown node.")
        if (pre, post) not in looped:
            successors.setdefault(pre, []).append(post)
            predecessors.setdefault(post, []).append(pre)
    for name, linked, direction in [
        *((k, v, "outgoing") for k, v in successors.items()),
        *((k, v, "incoming") for k, v in predecessors.items()),
    ]:
        if len(linked) > 1:
            raise ValueError(
                f"from_nir: node {name!r} has {len(linked)} {direction} edges ({linked}); "
                "eqsnn imports chains (no branches, merges or skip connections)."
            )
    path = [inputs[0]]
    while path[-1] != outputs[0]:
        following = successors.get(path[-1])
        if not following or following[0] in path:
            raise ValueError(
                f"from_nir: the chain from {inputs[0]!r} stops at node {path[-1]!r} and never "
                f"reaches the output {outputs[0]!r}."
            )
        path.append(following[0])
    if off := sorted(set(graph.nodes) - set(path) - set(loops.values())):
        raise ValueError(f"from_nir: node(s) {off} are not on the chain from input to output.")
    return path
