"""U-GAT-IT as a :class:`GeneratorModel`: unpaired mask <-> image translation.

Domain A = mask inputs (2 channels, mapped to [-1, 1] to match tanh outputs), domain B = images.
Batches need not be pairs: ``mask[i]`` and ``image[i]`` are treated as independent samples.
Both generators take ``max(mask, image)`` channels (inputs zero-padded) so that the identity loss
G_A2B(b) ~ b is defined although the domains have different channel counts.

Losses per the paper: LSGAN adversarial (global + local D, each with a CAM logit), cycle x10,
generator CAM x1000 (BCE), discriminator CAM x1 (LSGAN, adversarial weight), identity x10
(``generator.ugatit_identity``). Identity asks G_A2B to return an image fed to it unchanged; between
masks and images that could teach it to copy the mask through, but measured on EMPS it does not, and
without it the images follow their layouts less (docs/generators.md, "U-GAT-IT for masks").
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...config import GeneratorConfig
from .. import augment
from ..base import GeneratorModel, check_size, init_weights
from ..losses import lsgan
from .networks import CAMDiscriminator, ResnetGenerator

ADV_WEIGHT, CYCLE_WEIGHT, CAM_WEIGHT = 1.0, 10.0, 1000.0


class UGATITModel(GeneratorModel):
    name = "ugatit"
    paired = False
    adam_betas = (0.5, 0.999)  # the U-GAT-IT paper's (and its reference code's) optimizer

    def __init__(self, in_mask_channels: int, out_channels: int, cfg: GeneratorConfig, n_blocks: int = 4):
        super().__init__(in_mask_channels, out_channels, cfg)
        self.common = max(in_mask_channels, out_channels)
        ngf = cfg.channels
        self.genA2B = ResnetGenerator(self.common, out_channels, ngf, n_blocks, cfg.light)
        self.genB2A = ResnetGenerator(self.common, in_mask_channels, ngf, n_blocks, cfg.light)
        self.disGA = CAMDiscriminator(in_mask_channels, ngf, 7)
        self.disGB = CAMDiscriminator(out_channels, ngf, 7)
        self.disLA = CAMDiscriminator(in_mask_channels, ngf, 5)
        self.disLB = CAMDiscriminator(out_channels, ngf, 5)
        for net in self.children():
            init_weights(net)
        self.policy = augment.parse_policy(cfg.diffaug)
        self.mask_policy = tuple(p for p in self.policy if p != "color")

    def generator_module_names(self) -> list[str]:
        return ["genA2B"]

    def g_params(self) -> list[nn.Parameter]:
        return list(self.genA2B.parameters()) + list(self.genB2A.parameters())

    def d_params(self) -> list[nn.Parameter]:
        return [p for d in (self.disGA, self.disGB, self.disLA, self.disLB) for p in d.parameters()]

    def after_step(self) -> None:
        self.genA2B.clip_rho()
        self.genB2A.clip_rho()

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, 0, 0, self.common - x.shape[1]))

    def generate(self, mask_input: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        check_size(mask_input)
        return self.genA2B(self._pad(mask_input * 2 - 1))[0]

    # --- training -------------------------------------------------------------------------------
    def _domains(self, batch):
        check_size(batch["mask"])
        return batch["mask"] * 2 - 1, batch["image"]

    def _aug(self, real: torch.Tensor, fake: torch.Tensor, policy) -> tuple[torch.Tensor, torch.Tensor]:
        """The same augmentation parameters for the real and the fake batch of one domain."""
        params = augment.sample_params(policy, real.shape[0], real.shape[-2], real.shape[-1], real.device)
        return augment.apply(real, None, params)[0], augment.apply(fake, None, params)[0]

    def losses_d(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        real_a, real_b = self._domains(batch)
        with torch.no_grad():
            fake_b = self.genA2B(self._pad(real_a))[0]
            fake_a = self.genB2A(self._pad(real_b))[0]
        out = {}
        for dom, real, fake, dg, dl, pol in (
            ("a", real_a, fake_a, self.disGA, self.disLA, self.mask_policy),
            ("b", real_b, fake_b, self.disGB, self.disLB, self.policy),
        ):
            real, fake = self._aug(real, fake.detach(), pol)
            adv = real.new_zeros((), dtype=torch.float32)
            cam = real.new_zeros((), dtype=torch.float32)
            for d in (dg, dl):
                r_logit, r_cam = d(real)
                f_logit, f_cam = d(fake)
                adv = adv + lsgan(r_logit.float(), 1.0) + lsgan(f_logit.float(), 0.0)
                cam = cam + lsgan(r_cam.float(), 1.0) + lsgan(f_cam.float(), 0.0)
            out[f"d_adv_{dom}"] = ADV_WEIGHT * adv
            out[f"d_cam_{dom}"] = ADV_WEIGHT * cam
        return out

    def losses_g(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        real_a, real_b = self._domains(batch)
        fake_b, fake_b_cam, _ = self.genA2B(self._pad(real_a))
        fake_a, fake_a_cam, _ = self.genB2A(self._pad(real_b))
        cyc_a = self.genB2A(self._pad(fake_b))[0]
        cyc_b = self.genA2B(self._pad(fake_a))[0]
        # The identity pass also gives the CAM loss its "same domain" term, so it runs either way.
        id_a, id_a_cam, _ = self.genB2A(self._pad(real_a))
        id_b, id_b_cam, _ = self.genA2B(self._pad(real_b))
        identity_weight = self.cfg.ugatit_identity
        out = {}
        for dom, real, fake, cyc, idt, cam_other, cam_same, dg, dl, pol in (
            ("a", real_a, fake_a, cyc_a, id_a, fake_a_cam, id_a_cam, self.disGA, self.disLA, self.mask_policy),
            ("b", real_b, fake_b, cyc_b, id_b, fake_b_cam, id_b_cam, self.disGB, self.disLB, self.policy),
        ):
            _, fake_aug = self._aug(real, fake, pol)
            adv = real.new_zeros((), dtype=torch.float32)
            for d in (dg, dl):
                f_logit, f_cam = d(fake_aug)
                adv = adv + lsgan(f_logit.float(), 1.0) + lsgan(f_cam.float(), 1.0)
            out[f"g_adv_{dom}"] = ADV_WEIGHT * adv
            out[f"g_cycle_{dom}"] = CYCLE_WEIGHT * F.l1_loss(cyc.float(), real.float())
            if identity_weight:
                out[f"g_identity_{dom}"] = identity_weight * F.l1_loss(idt.float(), real.float())
            cam = F.binary_cross_entropy_with_logits(cam_other.float(), torch.ones_like(cam_other, dtype=torch.float32))
            cam = cam + F.binary_cross_entropy_with_logits(cam_same.float(), torch.zeros_like(cam_same, dtype=torch.float32))
            out[f"g_cam_{dom}"] = CAM_WEIGHT * cam
        return out
