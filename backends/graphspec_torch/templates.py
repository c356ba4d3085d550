"""Fixed text of every generated torch module: noise and state helpers, the Model's
parameter methods, and the readers of parameter files (.pt, and .npz without numpy).

Kept apart from the code generator so that codegen.py holds only what depends on the IR.
"""

from __future__ import annotations


def helpers() -> list[str]:
    return [
        "",
        "def _draw(noise, key, kind, like, generator):",
        '    """Injected noise when given (verification), else fresh draws (training)."""',
        "    if noise is not None and key in noise:",
        "        return noise[key]",
        "    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()",
        "    if generator is None:  # the *_like forms also trace with a symbolic batch size",
        "        draw_like = torch.rand_like if kind == 'uniform' else torch.randn_like",
        "        return draw_like(like, dtype=dtype)",
        "    draw = torch.rand if kind == 'uniform' else torch.randn",
        "    return draw(like.shape, dtype=dtype, device=like.device, generator=generator)",
        "",
        "",
        "@torch.no_grad()",
        "def _store(buffer, value):",
        '    """Running statistics are state, not part of the graph autograd differentiates."""',
        "    buffer.copy_(value)",
        "",
    ]


def param_methods() -> list[str]:
    return '''
    def spec_state_dict(self):
        """Parameters and state buffers by spec name (detached, on their device)."""
        return {name: getattr(self, attr).detach() for name, attr in SPEC_NAMES.items()}

    def load_params(self, source, strict=True):
        """Copy parameters and state in by spec name, from a dict of tensors (or arrays) or
        a file (see `read_params`). With strict, every name must be given and known."""
        values = source if isinstance(source, dict) else read_params(source)
        if strict:
            missing = sorted(set(SPEC_NAMES) - set(values))
            unknown = sorted(set(values) - set(SPEC_NAMES))
            if missing or unknown:
                raise KeyError(f"parameters missing: {missing}; not in this model: {unknown}")
        with torch.no_grad():
            for name, value in values.items():
                if name not in SPEC_NAMES:
                    continue
                target = getattr(self, SPEC_NAMES[name])
                value = torch.as_tensor(value)
                if tuple(value.shape) != tuple(target.shape):
                    raise ValueError(
                        f"{name}: shape {tuple(value.shape)} does not fit {tuple(target.shape)}"
                    )
                target.copy_(value)
        return self

    def save_params(self, path):
        """Write `spec_state_dict()` with torch.save (plain tensors: loads with weights_only)."""
        torch.save({k: v.cpu() for k, v in self.spec_state_dict().items()}, path)
'''.rstrip("\n").split("\n")


def readers() -> list[str]:
    return '''

def read_params(path):
    """{spec name: tensor} from a torch file of plain tensors (what `graphspec compile` and
    `Model.save_params` write; read with weights_only=True) or a graphspec checkpoint (.npz
    with keys 'param/<name>', parsed with the standard library: no numpy, no pickle)."""
    import zipfile

    path = str(path)
    is_npz = False
    if zipfile.is_zipfile(path):  # torch's own format is a zip too: tell them by the members
        with zipfile.ZipFile(path) as z:
            is_npz = all(n.endswith(".npy") for n in z.namelist())
    values = _read_npz(path) if is_npz else torch.load(path, map_location="cpu", weights_only=True)
    if any(k.startswith("param/") for k in values):
        values = {k[len("param/"):]: v for k, v in values.items() if k.startswith("param/")}
    return values


_NPY_DTYPES = {
    "<f8": torch.float64, "<f4": torch.float32, "<f2": torch.float16, "<i8": torch.int64,
    "<i4": torch.int32, "<i2": torch.int16, "|i1": torch.int8, "|u1": torch.uint8,
    "|b1": torch.bool,
}


def _read_npz(path):
    """The arrays of an .npz; of a graphspec checkpoint only the `param/` entries (its
    digest is a string, its metadata and optimizer state are not parameters)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(".npy")]
        if any(n.startswith("param/") for n in names):
            names = [n for n in names if n.startswith("param/")]
        return {n[:-4]: _parse_npy(z.read(n), n) for n in names}


def _parse_npy(data, name):
    """One array in NumPy's .npy format (version 1-3, little-endian numbers and bools)."""
    import ast

    if data[:6] != b"\\x93NUMPY":
        raise ValueError(f"{name}: not a .npy array")
    size = 2 if data[6] == 1 else 4
    start = 8 + size
    end = start + int.from_bytes(data[8:start], "little")
    header = ast.literal_eval(data[start:end].decode("latin1"))
    dtype = _NPY_DTYPES.get(header["descr"])
    if dtype is None:
        raise ValueError(f"{name}: unsupported array type {header['descr']!r}")
    shape = tuple(header["shape"])
    count = math.prod(shape)
    if count == 0:
        return torch.zeros(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(data[end:]), dtype=dtype, count=count)
    if header["fortran_order"]:
        return flat.reshape(shape[::-1]).permute(*reversed(range(len(shape)))).contiguous()
    return flat.reshape(shape)'''.split("\n")
