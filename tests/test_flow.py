import torch

from thinkpix import flow


def test_interpolation_endpoints_and_velocity_target():
    x0, noise = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    assert torch.equal(flow.interpolate(x0, noise, torch.zeros(3)), x0)
    assert torch.equal(flow.interpolate(x0, noise, torch.ones(3)), noise)
    # the exact velocity gives zero loss
    loss = flow.flow_loss(lambda x, t: noise - x0, x0, noise, torch.rand(3))
    assert loss.item() == 0.0


def test_logit_normal_timesteps_are_in_open_interval_and_seeded():
    a = flow.sample_timesteps(1000, torch.Generator().manual_seed(1))
    b = flow.sample_timesteps(1000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and (a > 0).all() and (a < 1).all()
    assert abs(a.median().item() - 0.5) < 0.05


def test_euler_and_heun_integrate_a_straight_path_exactly():
    x0 = torch.randn(2, 3)
    noise = torch.randn(2, 3)
    v = lambda x, t: noise - x0  # constant field: the straight path from noise to x0
    for method in ("euler", "heun"):
        out = flow.sample(v, noise, steps=7, method=method)
        assert torch.allclose(out, x0, atol=1e-5)


def test_heun_is_more_accurate_than_euler_on_a_curved_field():
    # dx/dt = x  => x(0) = x(1) * exp(-1)
    x1 = torch.ones(1, 1)
    exact = x1 * torch.exp(torch.tensor(-1.0))
    err = {m: (flow.sample(lambda x, t: x, x1, steps=5, method=m) - exact).abs().item() for m in ("euler", "heun")}
    assert err["heun"] < err["euler"] / 5


def test_seeded_noise_is_per_sample():
    a = flow.seeded_noise((2, 4, 4), [5, 6, 7])
    b = flow.seeded_noise((2, 4, 4), [6])
    assert torch.equal(a[1], b[0])


def test_guidance_scale_one_is_the_conditional_field():
    vc = lambda x, t: x + 1
    vu = lambda x, t: x * 0
    x = torch.randn(2, 2)
    assert torch.equal(flow.guided(vc, vu, 1.0)(x, None), vc(x, None))
    assert torch.allclose(flow.guided(vc, vu, 3.0)(x, None), 3 * (x + 1))
