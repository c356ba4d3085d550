"""Convolutions over channels-first tensors, as torch and ONNX lay them out: conv1d, conv2d,
conv_transpose2d."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import NonNegativeInt, PositiveInt, field_validator, model_validator

from graphspec.errors import did_you_mean
from graphspec.ops.registry import Attrs, Dim, ParamDecl, Sample, ShapeError, TensorType, op

Pair = tuple[PositiveInt, PositiveInt]
Pads = tuple[NonNegativeInt, NonNegativeInt]
Padding = Literal["valid", "same"] | NonNegativeInt | Pads


def _pair(value: Any) -> tuple[Any, Any]:
    return value if isinstance(value, tuple) else (value, value)


def _padding_word(value: Any, words: tuple[str, ...], numbers: str, why: str = "") -> Any:
    """A padding given as a word must be one of ``words``; the message says what else it may
    be (``numbers``: "an int", "an int or an [h, w] pair"), which pydantic's would not."""
    if isinstance(value, str) and value not in words:
        hint = did_you_mean(value, words)
        raise ValueError(
            "must be "
            + "".join(f"'{w}', " for w in words)
            + numbers
            + why
            + (f"; {hint}" if hint else "")
        )
    return value


def _sample2d(
    rng: np.random.Generator,
    transposed: bool,
    cin: int,
    cout: int,
    kernel: tuple[int, int],
    hw: tuple[int, int],
    note: str,
    bias: bool = True,
    **attrs: Any,
) -> Sample:
    """A conformance sample of conv2d or conv_transpose2d (whose weight is ``[in, out /
    groups, kh, kw]`` where conv2d's is ``[out, in / groups, kh, kw]``)."""
    groups = attrs.get("groups", 1)
    weight = (cin, cout // groups) if transposed else (cout, cin // groups)
    inputs = {"x": rng.normal(size=(2, cin) + hw), "weight": rng.normal(size=weight + kernel)}
    if bias:
        inputs["bias"] = rng.normal(size=cout)
    return Sample(
        inputs, {"channels": cout, "kernel": list(kernel), "bias": bias, **attrs}, note=note
    )


class _Conv(Attrs):
    """Shared rule of conv1d and conv2d; ``axes`` names the spatial axes they slide over."""

    channels: PositiveInt
    # Declared again by each op with its own types (conv1d: ints; conv2d: ints or pairs);
    # named here for the shared rule and the order of the documented attributes.
    kernel: Any
    stride: Any
    padding: Any
    dilation: Any
    groups: PositiveInt = 1
    bias: bool = True
    graph_only: ClassVar[frozenset[str]] = frozenset({"channels", "kernel", "bias"})
    axes: ClassVar[tuple[str, ...]] = ()

    # Per spatial axis, in the order of ``axes`` (conv1d's ints are one-element tuples).
    def _spatial(self, name: str) -> tuple[Any, ...]:
        value = getattr(self, name)
        return _pair(value) if len(self.axes) == 2 else (value,)

    @field_validator("padding", mode="before")
    @classmethod
    def _padding_words(cls, value: Any) -> Any:
        numbers = "an int or an [h, w] pair" if len(cls.axes) == 2 else "or an int"
        return _padding_word(value, ("valid", "same"), numbers)

    @model_validator(mode="after")
    def _check(self) -> _Conv:
        if self.padding == "same" and any(s != 1 for s in self._spatial("stride")):
            raise ValueError("padding 'same' needs stride 1 (as torch): set padding to a number")
        if self.channels % self.groups:
            raise ValueError(
                f"channels ({self.channels}) must be divisible by groups ({self.groups})"
            )
        return self

    def _in_channels(self, x: TensorType) -> int:
        rank = 2 + len(self.axes)
        if x.rank != rank:
            layout = ", ".join(("batch", "channels") + self.axes)
            raise ShapeError(
                f"{self.op_name} needs a {rank}-D input [{layout}], got shape {x}"  # type: ignore[attr-defined]
            )
        c = x.shape[1]
        if not isinstance(c, int):
            raise ShapeError(f"the input's channel axis must be a fixed size, got shape {x}")
        if c % self.groups:
            raise ShapeError(f"input channels ({c}) must be divisible by groups ({self.groups})")
        return c

    def infer(self, x: TensorType, *params: TensorType) -> TensorType:
        self._in_channels(x)
        sizes = zip(
            self.axes,
            x.shape[2:],
            self._spatial("kernel"),
            self._spatial("stride"),
            self._spatial("dilation"),
            self._spatial("padding")
            if self.padding not in ("valid", "same")
            else (0,) * len(self.axes),
            strict=True,
        )
        out: list[Dim] = [x.shape[0], self.channels]
        for axis, n, k, s, d, p in sizes:
            out.append(self._out_size(axis, n, k, s, d, p))
        return TensorType(tuple(out), x.dtype)

    def _out_size(self, axis: str, n: Dim, k: int, s: int, d: int, p: int) -> Dim:
        raise NotImplementedError  # each kind of convolution has its own size rule


def rows_in_no_window(n: int, k: int, s: int, d: int, p: int) -> int:
    """How many input rows (of ``n``, padded by ``p`` each side) no window of size ``k``,
    stride ``s``, dilation ``d`` reaches: the last ``span % s`` of the padded input, less
    the padding.  Dropping only padding is what strided downsampling (k 3, s 2, p 1 on an
    even size) does by design; dropping input is a mistake unless asked for."""
    return (n + 2 * p - d * (k - 1) - 1) % s - p


class _Sliding(_Conv):
    """conv1d and conv2d: windows that slide over the padded input.

    Every input row must fall in some window unless ``drop_remainder`` says to drop the
    rows the last window does not reach (what torch and ONNX do silently): an input row no
    window reads is most often a wrong kernel, stride or padding, so it is refused with the
    arithmetic. Dropping only padding (kernel 3, stride 2, padding 1 on an even size, the
    usual downsampling) is not refused."""

    drop_remainder: bool = False
    graph_only: ClassVar[frozenset[str]] = _Conv.graph_only | {"drop_remainder"}

    def _out_size(self, axis: str, n: Dim, k: int, s: int, d: int, p: int) -> Dim:
        # torch's rule: floor((n + 2p - d(k - 1) - 1) / s) + 1, refused below 1.
        if self.padding == "same":
            return n
        if not isinstance(n, int):
            raise ShapeError(f"{axis} must be a fixed size unless padding is 'same', got {n}")
        span = n + 2 * p - d * (k - 1) - 1
        size = span // s + 1
        if size < 1:
            raise ShapeError(
                f"{axis}: ({n} + 2*{p} - {d}*({k} - 1) - 1) / {s} + 1 = {size} < 1: "
                f"the kernel spans {d * (k - 1) + 1} but the padded input has {n + 2 * p}"
            )
        lost = rows_in_no_window(n, k, s, d, p)
        if lost > 0 and not self.drop_remainder:
            window = f"{k}" if d == 1 else f"{d}*({k} - 1) - 1"
            raise ShapeError(
                f"{axis}: ({n} + 2*{p} - {window}) / {s} + 1 is not an integer: the input's "
                f"last {lost} of {n} falls in no window; change the kernel, stride or "
                "padding, or set drop_remainder: true to drop it (as torch does)"
            )
        return size

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        c = self._in_channels(x)  # params are sized before infer runs: check here too
        window = int(np.prod(self._spatial("kernel")))
        kernel = tuple(self._spatial("kernel"))
        # He/Glorot fans of a convolution: each output sees in/groups * window inputs; each
        # input feeds out/groups * window outputs.
        fan_in = c // self.groups * window
        fan_out = self.channels // self.groups * window
        out = {
            "weight": ParamDecl(
                (self.channels, c // self.groups) + kernel,
                "glorot_uniform",
                fan_in,
                fan_out,
                True,
            )
        }
        if self.bias:
            out["bias"] = ParamDecl((self.channels,), "zeros", fan_in, fan_out)
        return out

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        window = int(np.prod(self._spatial("kernel")))
        c = x.shape[1] if isinstance(x.shape[1], int) else 1
        return 2 * out.numel() * (c // self.groups) * window


@op("conv2d")
class Conv2d(_Sliding):
    """2-D convolution (cross-correlation, as torch's ``F.conv2d``) over
    ``[batch, channels, height, width]``, giving ``[batch, channels (out), height', width']``.

    Parameters: ``weight`` ``[out, in / groups, kh, kw]`` and ``bias`` ``[out]`` (dropped by
    ``bias: false``). ``kernel``, ``stride``, ``dilation``: an int or an ``[h, w]`` pair.
    ``padding``: ``valid`` (none), ``same`` (output as large as the input; stride 1 only, an
    odd extra padding row/column goes at the bottom/right, as torch), an int or an ``[h, w]``
    pair (zeros on both sides). Output size per axis: ``(n + 2p - d(k - 1) - 1) / s + 1``,
    floored as torch does when only padding is left over; when input rows would fall in no
    window it is an error unless ``drop_remainder: true`` drops them.
    ``groups`` splits the channels into independent convolutions (``groups`` equal to the
    input channels: depthwise). Default init: ``glorot_uniform`` weight with the
    convolution's fans (fan-in ``in/groups * kh * kw``, fan-out ``out/groups * kh * kw``; name
    ``he_normal`` in the node's ``init`` for ReLU stacks), zero bias.
    """

    kernel: PositiveInt | Pair
    stride: PositiveInt | Pair = 1
    padding: Padding = "valid"
    dilation: PositiveInt | Pair = 1
    axes: ClassVar[tuple[str, ...]] = ("height", "width")

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        def sample(*args: Any, **attrs: Any) -> Sample:
            return _sample2d(rng, False, *args, **attrs)

        yield sample(3, 4, (3, 3), (5, 6), "3x3, valid")
        yield sample(2, 3, (3, 3), (7, 8), "stride 2, padding 1", stride=2, padding=1)
        yield sample(
            2,
            2,
            (3, 3),
            (8, 9),
            "stride 3, padding 1, drop remainder",
            stride=3,
            padding=1,
            drop_remainder=True,
        )
        yield sample(
            2,
            3,
            (2, 3),
            (5, 6),
            "rectangular kernel, padding [1, 2], no bias",
            bias=False,
            padding=[1, 2],
        )
        yield sample(
            2, 2, (2, 3), (4, 5), "padding same, even kernel (odd extra padding)", padding="same"
        )
        yield sample(2, 3, (3, 3), (7, 7), "dilation 2, stride [1, 2]", dilation=2, stride=[1, 2])
        yield sample(4, 6, (3, 3), (5, 5), "groups 2", groups=2, padding="same")
        yield sample(3, 3, (3, 3), (5, 5), "depthwise (groups = in channels)", groups=3)


@op("conv1d")
class Conv1d(_Sliding):
    """1-D convolution (cross-correlation, as torch's ``F.conv1d``) over
    ``[batch, channels, length]``, giving ``[batch, channels (out), length']``.

    Parameters: ``weight`` ``[out, in / groups, k]`` and ``bias`` ``[out]`` (dropped by
    ``bias: false``). ``padding``: ``valid``, ``same`` (stride 1 only, as torch) or an int;
    ``kernel``, ``stride``, ``dilation`` and ``groups`` as in ``conv2d``, whose rule and
    initialization it shares (output length ``(n + 2p - d(k - 1) - 1) / s + 1``, input left
    over only with ``drop_remainder: true``).
    """

    kernel: PositiveInt
    stride: PositiveInt = 1
    padding: Literal["valid", "same"] | NonNegativeInt = "valid"
    dilation: PositiveInt = 1
    axes: ClassVar[tuple[str, ...]] = ("length",)

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        n = rng.normal
        yield Sample(
            {"x": n(size=(2, 3, 8)), "weight": n(size=(4, 3, 3)), "bias": n(size=4)},
            {"channels": 4, "kernel": 3},
            note="valid",
        )
        yield Sample(
            {"x": n(size=(2, 2, 12)), "weight": n(size=(3, 2, 3))},
            {
                "channels": 3,
                "kernel": 3,
                "stride": 3,
                "padding": 1,
                "bias": False,
                "drop_remainder": True,
            },
            note="stride 3, padding 1, no bias, drop remainder",
        )
        yield Sample(
            {"x": n(size=(2, 4, 7)), "weight": n(size=(4, 2, 2)), "bias": n(size=4)},
            {"channels": 4, "kernel": 2, "padding": "same", "dilation": 2, "groups": 2},
            note="padding same, dilation 2, groups 2",
        )


@op("conv_transpose2d")
class ConvTranspose2d(_Conv):
    """2-D transposed convolution (as torch's ``F.conv_transpose2d``, the gradient of
    ``conv2d`` with respect to its input; decoders upsample with it) over
    ``[batch, channels, height, width]``, giving ``[batch, channels (out), height', width']``.

    Parameters: ``weight`` ``[in, out / groups, kh, kw]`` (torch's ``ConvTranspose2d``
    layout) and ``bias`` ``[out]`` (dropped by ``bias: false``). ``kernel``, ``stride``,
    ``dilation``, ``padding`` and ``output_padding``: an int or an ``[h, w]`` pair. Output
    size per axis: ``(n - 1) * s - 2p + d(k - 1) + output_padding + 1``: ``padding`` crops
    ``p`` rows/columns from each side of the full output (``same`` and ``valid`` are
    refused: they have no meaning here, as in torch), ``output_padding`` (smaller than the
    stride or the dilation, as torch) adds rows/columns at the bottom/right, so that a
    stride-``s`` ``conv2d`` and this op can map sizes both ways. ``groups`` as ``conv2d``.
    Default init: ``glorot_uniform`` with torch's fans of this layout (fan-in
    ``out/groups * kh * kw``, fan-out ``in/groups * kh * kw``), zero bias.
    """

    kernel: PositiveInt | Pair
    stride: PositiveInt | Pair = 1
    padding: NonNegativeInt | Pads = 0
    output_padding: NonNegativeInt | Pads = 0
    dilation: PositiveInt | Pair = 1
    axes: ClassVar[tuple[str, ...]] = ("height", "width")

    @field_validator("padding", mode="before")
    @classmethod
    def _padding_words(cls, value: Any) -> Any:
        why = (
            " (rows and columns cropped from each side of the output): 'same' and 'valid' "
            "have no meaning for a transposed convolution, as in torch"
        )
        return _padding_word(value, (), "an int or an [h, w] pair", why)

    @model_validator(mode="after")
    def _check_output_padding(self) -> ConvTranspose2d:
        sizes = zip(
            self.axes,
            self._spatial("output_padding"),
            self._spatial("stride"),
            self._spatial("dilation"),
            strict=True,
        )
        for axis, op_, s, d in sizes:
            if op_ >= max(s, d):
                raise ValueError(
                    f"output_padding {op_} along {axis} must be smaller than the stride ({s}) "
                    f"or the dilation ({d}), as torch requires"
                )
        return self

    def _out_size(self, axis: str, n: Dim, k: int, s: int, d: int, p: int) -> Dim:
        if not isinstance(n, int):
            raise ShapeError(f"{axis} must be a fixed size, got {n}")
        op_ = self._spatial("output_padding")[self.axes.index(axis)]
        size = (n - 1) * s - 2 * p + d * (k - 1) + op_ + 1
        if size < 1:
            raise ShapeError(
                f"{axis}: ({n} - 1)*{s} - 2*{p} + {d}*({k} - 1) + {op_} + 1 = {size} < 1: "
                f"the padding crops {2 * p} of the {size + 2 * p} rows/columns the kernel "
                "spreads the input over"
            )
        return size

    def params(self, x: TensorType, *_: TensorType) -> dict[str, ParamDecl]:
        c = self._in_channels(x)  # params are sized before infer runs: check here too
        window = int(np.prod(self._spatial("kernel")))
        kernel = tuple(self._spatial("kernel"))
        # torch's fans of a [in, out/groups, kh, kw] kernel read its axes as conv2d's
        # [out, in/groups, ...]: fan-in out/groups * window, fan-out in * window (per group
        # here, as conv2d's fan-out).
        fan_in = self.channels // self.groups * window
        fan_out = c // self.groups * window
        out = {
            "weight": ParamDecl(
                (c, self.channels // self.groups) + kernel, "glorot_uniform", fan_in, fan_out, True
            )
        }
        if self.bias:
            out["bias"] = ParamDecl((self.channels,), "zeros", fan_in, fan_out)
        return out

    def flops(self, x: TensorType, *params: TensorType, out: TensorType) -> int:
        # every input value is multiplied into out/groups * kh * kw outputs
        window = int(np.prod(self._spatial("kernel")))
        return 2 * x.numel() * (self.channels // self.groups) * window

    @classmethod
    def samples(cls, rng: np.random.Generator) -> Any:
        def sample(*args: Any, **attrs: Any) -> Sample:
            return _sample2d(rng, True, *args, **attrs)

        yield sample(3, 4, (3, 3), (4, 5), "3x3, stride 1")
        yield sample(
            2,
            3,
            (3, 3),
            (3, 4),
            "stride 2, padding 1, output_padding 1",
            stride=2,
            padding=1,
            output_padding=1,
        )
        yield sample(
            2,
            3,
            (2, 3),
            (3, 3),
            "rectangular kernel, stride [2, 3], padding [0, 1], output_padding [1, 2], no bias",
            bias=False,
            stride=[2, 3],
            padding=[0, 1],
            output_padding=[1, 2],
        )
        yield sample(
            2,
            2,
            (3, 3),
            (3, 4),
            "dilation [2, 1], output_padding [1, 0] (below the dilation)",
            dilation=[2, 1],
            output_padding=[1, 0],
        )
        yield sample(4, 6, (3, 3), (3, 3), "groups 2, stride 2", groups=2, stride=2)
