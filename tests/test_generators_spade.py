from test_generators_base import GeneratorChecks


class TestSPADE(GeneratorChecks):
    MODEL = "spade"


class TestSPADEWithVAE(GeneratorChecks):
    MODEL = "spade"
    CFG = {"use_vae": True}
    OVERFIT = False
