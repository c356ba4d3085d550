"""Fixed text of generated numpy modules: the noise helper, the parameter-only entry point,
the checkpoint loader and the script entry.

Kept apart from the code generator so that codegen.py holds only what depends on the IR.
"""

from __future__ import annotations


def noise_helper() -> list[str]:
    """``_draw`` (only in modules with stochastic ops)."""
    return [
        "_RNG = np.random.default_rng()",
        "",
        "def _draw(noise, key, kind, like, rng):",
        '    """Injected noise when given (verification), else fresh draws (training)."""',
        "    if noise is not None and key in noise:",
        "        return noise[key]",
        "    rng = _RNG if rng is None else rng",
        "    if kind == 'uniform':",
        "        return rng.random(like.shape, dtype=like.dtype)",
        "    return rng.standard_normal(like.shape, dtype=like.dtype)",
    ]


def entry_points() -> list[str]:
    # The backward pass needs the forward's values, so it lives inside loss_and_grads, where
    # each value is freed after its last use in either direction; these name its uses, as
    # `forward` names evaluate's first part.
    return '''

def forward(params, inputs, training=False, noise=None, rng=None):
    """The outputs, by name."""
    return evaluate(params, inputs, training, noise, rng, losses=False)

def loss_and_param_grads(params, inputs, training=True, noise=None, rng=None):
    """`loss_and_grads` for the parameters only (training: no input gradients)."""
    return loss_and_grads(params, inputs, training, noise, rng, input_grads=False)

def backward(params, inputs, training=True, noise=None, rng=None):
    """dL/d(every parameter and differentiable input), by the hand-written backward
    pass of `loss_and_grads` (which runs the forward pass it needs first)."""
    return loss_and_grads(params, inputs, training, noise, rng)[2]

def load_checkpoint(path):
    """Parameters and state from a graphspec checkpoint (.npz, no pickle); also reads the
    initial parameters `graphspec compile` writes next to this module."""
    with np.load(path, allow_pickle=False) as f:
        return {k[len('param/'):]: f[k] for k in f.files if k.startswith('param/')}

load_initial_params = load_checkpoint'''.split("\n")


def script_entry() -> list[str]:
    # `python model.py --checkpoint ckpt.npz --data x.npz`: predictions without graphspec.
    return '''
def _main(argv=None):
    """Print the outputs for the inputs in an .npz (arrays named like INPUTS) as CSV, or
    write them to an .npz or .csv file (-o)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(description="Outputs of this model for new data.")
    p.add_argument("--checkpoint", required=True, help="graphspec checkpoint or parameters (.npz)")
    p.add_argument("--data", required=True, help=".npz with one array per input, by name")
    p.add_argument("-o", "--output", help="write to this .npz or .csv instead of printing")
    args = p.parse_args(argv)
    params = load_checkpoint(args.checkpoint)
    with np.load(args.data, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files if k in INPUTS}
    try:
        outputs = forward(params, data)
    except KeyError as e:
        sys.exit(f"{args.data} lacks input {e}; inputs: {', '.join(INPUTS)}")
    if args.output and args.output.endswith(".npz"):
        return np.savez(args.output, **outputs)
    cols = {}
    for name, value in outputs.items():
        flat = np.asarray(value).reshape(len(value), -1)
        for j in range(flat.shape[1]):
            cols[name if flat.shape[1] == 1 else f"{name}_{j}"] = flat[:, j]
    rows = [",".join(repr(float(v)) for v in row) for row in zip(*cols.values())]
    text = "\\n".join([",".join(cols), *rows]) + "\\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)

if __name__ == "__main__":
    _main()'''.split("\n")
