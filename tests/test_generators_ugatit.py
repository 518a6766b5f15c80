import pytest
import torch
from test_generators_base import GeneratorChecks, to_batch, toy_pairs


class TestUGATIT(GeneratorChecks):
    MODEL = "ugatit"

    def reconstruction_error(self, model, batch) -> float:
        """Unpaired model: the cycle-consistency error (mask -> image -> mask and back)."""
        with torch.no_grad():
            losses = model.losses_g(batch)
        return float(losses["g_cycle_a"] + losses["g_cycle_b"])

    @pytest.mark.slow  # ~20 s on the 2-core CPU (SPADE's, in the quick loop, takes ~5 s)
    def test_overfit_lowers_reconstruction(self):
        super().test_overfit_lowers_reconstruction()

    def test_rho_is_clipped_after_step(self):
        model = self.model(1)
        for name, p in model.named_parameters():
            if name.endswith("rho"):
                p.data.fill_(1.7)
        model.after_step()
        rhos = [p for n, p in model.named_parameters() if n.endswith("rho")]
        assert rhos and all(float(p.max()) <= 1.0 and float(p.min()) >= 0.0 for p in rhos)

    def test_unpaired_batches_train(self):
        pairs = toy_pairs(4, 32, 32)
        batch = to_batch(pairs)
        batch["image"] = batch["image"].flip(0)  # images no longer belong to the masks
        model = self.model(1)
        losses = {**model.losses_d(batch), **model.losses_g(batch)}
        assert all(torch.isfinite(v) for v in losses.values())
