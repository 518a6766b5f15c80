"""SPADE (GauGAN) as a :class:`GeneratorModel`: hinge GAN + D feature matching (+ VAE KL, + VGG).

The SPADE norm uses InstanceNorm (per-image statistics keep generation independent of the batch);
``spade_norm="batch"`` would give the paper's sync-free BatchNorm variant.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...config import GeneratorConfig
from .. import augment
from ..base import GeneratorModel, check_size, init_weights
from ..losses import hinge_d, hinge_g, kl_normal, load_vgg19_features, vgg_loss
from .networks import ConvEncoder, MultiscaleDiscriminator, SPADEGenerator


class SPADEModel(GeneratorModel):
    name = "spade"
    paired = True
    adam_betas = (0.0, 0.9)  # the SPADE paper's, with lr_g 1e-4 / lr_d 4e-4 (TTUR)

    def __init__(self, in_mask_channels: int, out_channels: int, cfg: GeneratorConfig, spade_norm: str = "instance"):
        super().__init__(in_mask_channels, out_channels, cfg)
        nf = cfg.channels
        # "auto" is decided from the training images before a model is built (train_generator);
        # a model built straight from a config without that decision has no encoder.
        use_vae = cfg.use_vae is True
        self._z_dim = 8 * nf if use_vae else 0  # paper: 256 with nf = 64
        self.netG = SPADEGenerator(in_mask_channels, out_channels, nf, self._z_dim, spade_norm)
        self.netE = ConvEncoder(out_channels, nf, self._z_dim) if use_vae else None
        self.netD = MultiscaleDiscriminator(in_mask_channels + out_channels, nf, cfg.num_d)
        for net in (self.netG, self.netE, self.netD):
            if net is not None:
                init_weights(net)
        self.policy = augment.parse_policy(cfg.diffaug)
        if cfg.vgg_weights:  # fail at construction, not at step 1
            load_vgg19_features(cfg.vgg_weights, torch.device("cpu"))

    @property
    def z_dim(self) -> int:
        return self._z_dim

    def generator_module_names(self) -> list[str]:
        return ["netG"]

    def g_params(self) -> list[nn.Parameter]:
        params = list(self.netG.parameters())
        if self.netE is not None:
            params += list(self.netE.parameters())
        return params

    def d_params(self) -> list[nn.Parameter]:
        return list(self.netD.parameters())

    def generate(self, mask_input: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        check_size(mask_input)
        return self.netG(mask_input, z if self._z_dim else None)

    # --- training -------------------------------------------------------------------------------
    def _fake(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask, real = batch["mask"], batch["image"]
        check_size(mask)
        if self.netE is None:
            return self.netG(mask), None
        mu, logvar = self.netE(real)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.netG(mask, z), kl_normal(mu.float(), logvar.float())

    def _discriminate(self, mask, fake, real, params):
        fake_a, mask_a = augment.apply(fake, mask, params)
        real_a, _ = augment.apply(real, mask, params)
        both = self.netD(torch.cat([torch.cat([mask_a, fake_a], 1), torch.cat([mask_a, real_a], 1)], 0))
        n = fake.shape[0]
        return [[f[:n] for f in s] for s in both], [[f[n:] for f in s] for s in both]

    def _params(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return augment.sample_params(self.policy, x.shape[0], x.shape[-2], x.shape[-1], x.device)

    def losses_d(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake, _ = self._fake(batch)
        fake_out, real_out = self._discriminate(batch["mask"], fake.detach(), batch["image"], self._params(fake))
        adv = sum(hinge_d(r[-1], f[-1]) for r, f in zip(real_out, fake_out)) / len(real_out)
        return {"d_hinge": adv}

    def losses_g(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        real = batch["image"]
        fake, kl = self._fake(batch)
        fake_out, real_out = self._discriminate(batch["mask"], fake, real, self._params(fake))
        n_d = len(fake_out)
        losses = {"g_hinge": sum(hinge_g(f[-1]) for f in fake_out) / n_d}
        feat = fake.new_zeros((), dtype=torch.float32)
        for f_scale, r_scale in zip(fake_out, real_out):
            for f, r in zip(f_scale[:-1], r_scale[:-1]):
                feat = feat + F.l1_loss(f.float(), r.detach().float())
        losses["g_feat"] = cfg.lambda_feat * feat / n_d
        if cfg.lambda_l1:
            losses["g_l1"] = cfg.lambda_l1 * F.l1_loss(fake.float(), real.float())
        if kl is not None:
            losses["g_kl"] = cfg.lambda_kl * kl
        if cfg.vgg_weights:
            vgg = load_vgg19_features(cfg.vgg_weights, real.device)
            losses["g_vgg"] = cfg.lambda_vgg * vgg_loss(vgg, fake, real)
        return losses
