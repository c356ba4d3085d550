"""The adversarial-training arithmetic both trainers call (graphspec.train.adversarial)."""

from __future__ import annotations

import numpy as np
import torch

from graphspec.train.adversarial import fgsm_example, mix, mix_each


def test_fgsm_steps_epsilon_along_the_gradient_sign_on_numpy_and_torch_alike():
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    g[0, 0] = 0.0  # sign 0: that element stays
    want = x + 0.1 * np.where(g > 0, 1.0, np.where(g < 0, -1.0, 0.0))
    got_np = fgsm_example(x, g, 0.1, np.sign)
    got_t = fgsm_example(torch.from_numpy(x), torch.from_numpy(g), 0.1, torch.sign)
    np.testing.assert_array_equal(got_np, want)
    np.testing.assert_array_equal(got_t.numpy(), want)  # bit for bit: one formula


def test_mix_weighs_the_adversarial_pass_by_mix():
    assert mix(2.0, 4.0, 0.25) == 2.5
    assert mix(2.0, 4.0, 0.0) == 2.0 and mix(2.0, 4.0, 1.0) == 4.0
    clean = {"a": np.array([1.0, 3.0]), "b": np.array(5.0), "extra": np.array(0.0)}
    adv = {"a": np.array([3.0, 1.0]), "b": np.array(1.0)}
    mixed = mix_each(clean, adv, 0.5, keys=["a", "b"])
    assert sorted(mixed) == ["a", "b"]
    np.testing.assert_array_equal(mixed["a"], [2.0, 2.0])
    assert float(mixed["b"]) == 3.0
    terms = mix_each({"t": torch.tensor(1.0)}, {"t": torch.tensor(3.0)}, 0.5)
    assert float(terms["t"]) == 2.0
