import torch
from test_generators_base import GeneratorChecks, to_batch, toy_pairs

from pipeline.generators.pix2pix.networks import DEPTH, UNetGenerator


class TestPix2Pix(GeneratorChecks):
    MODEL = "pix2pix"

    def test_l1_weight_is_its_own_option(self):
        model = self.model(1, pix2pix_lambda_l1=0.0)
        assert float(model.losses_g(to_batch(toy_pairs(2, 32, 32)))["g_l1"].detach()) == 0.0

    def test_skips_reach_every_level_at_odd_sizes(self):
        """The decoder returns to each recorded encoder size, so a 33 x 47 input gives 33 x 47."""
        net = UNetGenerator(2, 3, 4).eval()
        out = net(torch.zeros(1, 2, 33, 47))
        assert out.shape == (1, 3, 33, 47)
        assert len(net.down) == len(net.up) == DEPTH
