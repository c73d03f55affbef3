"""Network shapes and the properties of the paper's designs that the pipeline relies on."""

import pytest
import torch

from SpineSegLib.networks import SpatialConfigurationNet, UNetAvgLinear3D, UNetRegressor, build_network

torch.manual_seed(0)


def test_unet_keeps_size_and_width():
    net = UNetAvgLinear3D(in_channels=2, num_filters=6, num_levels=3)
    x = torch.randn(2, 2, 16, 12, 8)
    y = net(x)
    assert y.shape == (2, 6, 16, 12, 8)
    assert net.size_divisor == 4
    # Constant width: every convolution of every level has num_filters outputs.
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert {c.out_channels for c in convs} == {6}


def test_unet_regressor_output_channels_and_receptive_field():
    net = UNetRegressor(in_channels=1, out_channels=3, num_filters=4, num_levels=4).eval()
    x = torch.zeros(1, 1, 32, 32, 32)
    x[..., 16, 16, 16] = 1.0
    with torch.no_grad():
        base = net(torch.zeros_like(x))
        y = net(x)
    assert y.shape == (1, 3, 32, 32, 32)
    # Four levels see far: an impulse changes outputs 12 voxels away.
    assert (y - base)[..., 16, 16, 4].abs().max() > 0


def test_scn_output_is_product_of_bounded_parts():
    net = SpatialConfigurationNet(in_channels=1, num_labels=5, num_filters=4, local_levels=3, spatial_levels=2)
    x = torch.randn(1, 1, 32, 32, 32)
    heat, local, spatial = net.forward_parts(x)
    assert heat.shape == local.shape == spatial.shape == (1, 5, 32, 32, 32)
    torch.testing.assert_close(heat, local * spatial)
    assert local.abs().max() <= 1 and spatial.abs().max() <= 1
    assert net.size_divisor == 8


def test_heatmap_heads_start_near_zero():
    net = SpatialConfigurationNet(num_labels=26, num_filters=4, local_levels=2, spatial_levels=2)
    with torch.no_grad():
        out = net(torch.randn(1, 1, 16, 16, 16))
    assert out.abs().max() < 0.05


def test_build_network_from_config_and_unknown_architecture():
    net = build_network(
        {"architecture": "unet", "in_channels": 2, "out_channels": 1, "num_filters": 4, "num_levels": 2}
    )
    assert isinstance(net, UNetRegressor)
    with pytest.raises(ValueError, match="unknown network architecture 'resnet'"):
        build_network({"architecture": "resnet"})


def test_scn_local_branch_learns_from_the_first_step():
    """The spatial factor starts near 1, so the product passes the local branch its full gradient."""
    net = SpatialConfigurationNet(num_labels=3, num_filters=4, local_levels=2, spatial_levels=2)
    _, local, spatial = net.forward_parts(torch.randn(1, 1, 16, 16, 16))
    assert spatial.min() > 0.9
    stalled = SpatialConfigurationNet(
        num_labels=3, num_filters=4, local_levels=2, spatial_levels=2, spatial_bias_init=0
    )
    _, _, spatial0 = stalled.forward_parts(torch.randn(1, 1, 16, 16, 16))
    assert spatial0.abs().max() < 0.05


def test_gradients_flow_through_both_scn_branches():
    net = SpatialConfigurationNet(num_labels=3, num_filters=4, local_levels=2, spatial_levels=2, head_init_std=0.1)
    out = net(torch.randn(1, 1, 16, 16, 16))
    out.square().sum().backward()
    assert net.local_head.weight.grad.abs().sum() > 0
    assert net.spatial_head.weight.grad.abs().sum() > 0
