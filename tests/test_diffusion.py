
import pytest
import torch

from sparsesis.models.diffusion import (alpha_sigma, diffusion_loss, guided, logsnr_cosine, q_sample, sample_ddim,
                                 sample_ddpm, time_grid, v_from_x, v_target, x_eps_from_v)


def test_schedule_endpoints_and_monotonic():
    t = torch.linspace(0, 1, 1001)
    ls = logsnr_cosine(t)
    assert ls[0] == pytest.approx(20.0, abs=1e-3) and ls[-1] == pytest.approx(-20.0, abs=1e-3)
    assert (ls[1:] < ls[:-1]).all()
    a, s = alpha_sigma(ls)
    torch.testing.assert_close(a ** 2 + s ** 2, torch.ones_like(a))
    assert a[0] > 0.9999 and s[-1] > 0.9999
    assert logsnr_cosine(torch.tensor([0.5])).item() == pytest.approx(0.0, abs=1e-3)  # cosine midpoint


def test_q_sample_and_v_identities():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0.05, 0.3, 0.7, 0.99])
    z = q_sample(x, t, eps)
    v = v_target(x, eps, t)
    x_hat, eps_hat = x_eps_from_v(z, v, t)
    torch.testing.assert_close(x_hat, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eps_hat, eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(v_from_x(z, x, t), v, atol=1e-4, rtol=1e-4)
    # v has unit variance for unit-variance x and eps at every t
    a, s = alpha_sigma(logsnr_cosine(t))
    torch.testing.assert_close(a ** 2 + s ** 2, torch.ones(4))


def oracle(x):
    """A model that knows the clean image: returns the exact v for it."""
    return lambda z, t: v_from_x(z, x, t)


@pytest.mark.parametrize("steps", [1, 4, 50])
def test_ddim_with_oracle_recovers_data(steps):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    out = sample_ddim(oracle(x), torch.randn(2, 3, 8, 8, generator=g), steps)
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


def test_ddpm_with_oracle_recovers_data_and_is_seeded():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(2, 3, 8, 8, generator=g)
    out = sample_ddpm(oracle(x), noise, 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


def test_samplers_deterministic_under_seed():
    model = lambda z, t: 0.3 * z + t[:, None, None, None]  # noqa: E731
    noise = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = sample_ddpm(model, noise, 10, generator=torch.Generator().manual_seed(5))
    b = sample_ddpm(model, noise, 10, generator=torch.Generator().manual_seed(5))
    c = sample_ddpm(model, noise, 10, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(sample_ddim(model, noise, 10), sample_ddim(model, noise, 10))


def test_callback_trajectory_ends_at_returned_image():
    g = torch.Generator().manual_seed(3)
    steps = []
    out = sample_ddim(lambda z, t: 0.5 * z, torch.randn(1, 3, 8, 8, generator=g), 6, callback=steps.append)
    assert [s.index for s in steps] == list(range(6))
    assert steps[0].t == 1.0 and steps[-1].t == pytest.approx(1 / 6)
    torch.testing.assert_close(steps[-1].x0, out)


def test_guidance_mixing():
    calls = []

    def model(z, t, c):
        calls.append(z.shape[0])
        return c.expand_as(z)

    z, t = torch.zeros(2, 3, 4, 4), torch.zeros(2)
    cond, uncond = torch.full((2, 1, 1, 1), 2.0), torch.full((2, 1, 1, 1), 1.0)
    out = guided(model, cond, uncond, 3.0)(z, t)
    torch.testing.assert_close(out, torch.full_like(z, 1.0 + 3.0 * (2.0 - 1.0)))
    assert calls == [4]
    calls.clear()
    out = guided(model, cond, uncond, 1.0)(z, t)
    torch.testing.assert_close(out, torch.full_like(z, 2.0))
    assert calls == [2]  # scale 1: one pass, no unconditional batch
    calls.clear()
    # a ready-made stacked conditioning (the cached layout branch) is used as given, not rebuilt
    both = torch.cat([cond, torch.full((2, 1, 1, 1), 0.0)])
    out = guided(model, None, None, 3.0, both=both)(z, t)
    torch.testing.assert_close(out, torch.full_like(z, 0.0 + 3.0 * (2.0 - 0.0)))
    assert calls == [4]


def test_loss_zero_for_exact_model_and_positive_otherwise():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(3, 3, 8, 8, generator=g)
    t = torch.rand(3, generator=g)
    exact = lambda z, tt: v_target(x, eps, tt)  # noqa: E731
    assert diffusion_loss(exact, x, t, eps).abs().max() < 1e-10
    assert (diffusion_loss(lambda z, tt: torch.zeros_like(z), x, t, eps) > 0).all()


def test_time_grid_rejects_bad_steps():
    assert time_grid(4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            time_grid(bad)


def test_autoguidance_and_the_guidance_interval_mix_as_defined():
    from sparsesis.models.diffusion import autoguided, guidance_interval

    main = lambda z, t: z + 1.0  # noqa: E731
    guide = lambda z, t: z - 1.0  # noqa: E731
    z, t = torch.zeros(2, 3, 4, 4), torch.full((2,), 0.5)
    torch.testing.assert_close(autoguided(main, guide, 2.0)(z, t), torch.full_like(z, 3.0))  # -1 + 2 * (1 - -1)
    assert autoguided(main, guide, 1.0) is main  # scale 1: the main model alone, one pass
    # autoguidance 1 with classifier-free guidance on top is classifier-free guidance alone: the guide never runs
    passes = []
    counted_guide = lambda z, t: passes.append("guide") or z - 1.0  # noqa: E731
    pair = lambda z, t: (z + 1.0, z + 0.25)  # noqa: E731  (conditional, unconditional)
    torch.testing.assert_close(autoguided(main, counted_guide, 1.0, pair, cfg_scale=3.0)(z, t),
                               torch.full_like(z, 0.25 + 3.0 * 0.75))
    assert passes == []
    autoguided(main, counted_guide, 1.5, pair, cfg_scale=3.0)(z, t)
    assert passes == ["guide"]
    calls = []
    strong = lambda z, t: calls.append("guided") or z + 5  # noqa: E731
    plain = lambda z, t: calls.append("plain") or z  # noqa: E731
    fn = guidance_interval(strong, plain, 0.2, 0.7)
    for time in (0.9, 0.7, 0.5, 0.2, 0.1):
        fn(z, torch.full((2,), time))
    assert calls == ["plain", "guided", "guided", "guided", "plain"]
    with pytest.raises(ValueError, match="lo <= hi"):
        guidance_interval(strong, plain, 0.8, 0.2)


def test_one_guidance_specification_composes_the_guidances():
    from sparsesis.models.diffusion import guided_model

    plain = lambda z, t: z + 1.0  # noqa: E731
    pair = lambda z, t: (z + 1.0, z + 0.25)  # noqa: E731  (conditional, unconditional)
    guide = lambda z, t: z - 1.0  # noqa: E731
    z, t = torch.zeros(2, 3, 4, 4), torch.full((2,), 0.5)
    assert guided_model(plain, pair, 1.0, guide, interval=(0.2, 0.4)) is plain  # nothing to mix: one pass a step
    torch.testing.assert_close(guided_model(plain, pair, 3.0)(z, t), torch.full_like(z, 0.25 + 3.0 * 0.75))
    torch.testing.assert_close(guided_model(plain, None, 2.0, guide)(z, t), torch.full_like(z, -1.0 + 2.0 * 2.0))
    torch.testing.assert_close(guided_model(plain, pair, 2.0, guide, 3.0)(z, t),  # v_c + 1 (v_c - v_g) + 2 (v_c - v_u)
                               torch.full_like(z, 1.0 + 2.0 + 2.0 * 0.75))
    torch.testing.assert_close(guided_model(plain, pair, 3.0, interval=(0.6, 1.0))(z, t), plain(z, t))  # t outside
    with pytest.raises(ValueError, match="needs a guide"):
        guided_model(plain, pair, 2.0, cfg_scale=2.0)
