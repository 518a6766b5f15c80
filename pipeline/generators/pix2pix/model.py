"""pix2pix as a :class:`GeneratorModel`: conditional GAN (the paper's non-saturating objective)
plus ``generator.pix2pix_lambda_l1`` x L1 to the real image (the paper's 100).

Why it is here next to SPADE: its U-Net skips hand the mask's edges straight to the output, so on
a CPU budget it may reach a usable image sooner than SPADE, which re-injects the layout through
normalisation at every scale but starts from a 1/32-size map (docs/generators.md compares them at
equal CPU time). Deterministic (``z_dim`` 0): the paper's only noise is dropout, which generation
(eval mode) turns off, as SPADE without its style encoder is deterministic too.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...config import GeneratorConfig
from .. import augment
from ..base import GeneratorModel, check_size, init_weights
from .networks import PatchDiscriminator, UNetGenerator


class Pix2PixModel(GeneratorModel):
    name = "pix2pix"
    paired = True
    adam_betas = (0.5, 0.999)  # the pix2pix paper's (lr 2e-4 for both networks there)

    def __init__(self, in_mask_channels: int, out_channels: int, cfg: GeneratorConfig):
        super().__init__(in_mask_channels, out_channels, cfg)
        self.netG = UNetGenerator(in_mask_channels, out_channels, cfg.channels)
        self.netD = PatchDiscriminator(in_mask_channels + out_channels, cfg.channels)
        for net in (self.netG, self.netD):
            init_weights(net)
        self.policy = augment.parse_policy(cfg.diffaug)

    def generator_module_names(self) -> list[str]:
        return ["netG"]

    def g_params(self) -> list[nn.Parameter]:
        return list(self.netG.parameters())

    def d_params(self) -> list[nn.Parameter]:
        return list(self.netD.parameters())

    def generate(self, mask_input: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        check_size(mask_input)
        return self.netG(mask_input)

    def _discriminate(self, mask, fake, real):
        params = augment.sample_params(self.policy, fake.shape[0], fake.shape[-2], fake.shape[-1], fake.device)
        fake_a, mask_a = augment.apply(fake, mask, params)
        real_a, _ = augment.apply(real, mask, params)
        logits = self.netD(torch.cat([torch.cat([mask_a, fake_a], 1), torch.cat([mask_a, real_a], 1)], 0)).float()
        n = fake.shape[0]
        return logits[:n], logits[n:]

    def losses_d(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.netG(batch["mask"])
        fake_logits, real_logits = self._discriminate(batch["mask"], fake, batch["image"])
        # the paper halves D's objective so that D learns more slowly than G
        loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return {"d_bce": loss}

    def losses_g(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask, real = batch["mask"], batch["image"]
        check_size(mask)
        fake = self.netG(mask)
        fake_logits, _ = self._discriminate(mask, fake, real)
        return {"g_bce": F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits)),
                "g_l1": self.cfg.pix2pix_lambda_l1 * F.l1_loss(fake.float(), real.float())}
