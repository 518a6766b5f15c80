"""Typed configuration: the one place that knows every option of every stage.

Configs are YAML files in ``configs/`` (``smoke``, ``default``, ``full``; installed as
``pipeline/configs``) or any path. Command-line overrides are ``section.key=value`` strings whose
values are parsed as YAML scalars/lists, except that an option typed ``str`` takes the text as
typed (a set named ``20240601`` stays a string). Unknown keys and wrong types raise
:class:`ConfigError` with a one-line message.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError  # re-exported: `from pipeline.config import ConfigError` keeps working
from .hashing import json_hash


def _config_dir() -> Path:
    """The built-in configs ship inside the package (``pipeline/configs``, a link to the top-level
    ``configs/`` in the repo), so wheels and non-editable installs find them. A checkout without
    symlink support (Windows, core.symlinks=false) has a plain file there: use the repo's folder."""
    here = Path(__file__).resolve().parent
    packaged = here / "configs"
    return packaged if packaged.is_dir() else here.parent / "configs"


CONFIG_DIR = _config_dir()


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the labeled set lives and how it is split."""

    root: str = "data"  # folder holding labeled sets, one sub-folder per set
    set: str = "demo"  # set name under root; "demo" = the procedural demo set (rendered on demand)
    n_train: int = Field(100, ge=1)  # real training pairs (~100 is the product's premise)
    n_val: int = Field(20, ge=1)
    n_test: int | None = Field(None, ge=1)  # None: every remaining image (a fixed list in set.yaml wins)
    # a text file of test stems, one per line (e.g. a dataset's official split; relative paths are
    # looked up from the working folder, then from configs/); set.yaml's `test` list wins over it
    test_list: str | None = None
    split_seed: int = 0
    max_image_pixels: int = Field(40_000_000, ge=1)  # images larger than this are refused
    max_instances: int = Field(65_535, ge=1)
    demo_images: int = Field(160, ge=4)  # size of the procedural demo set when set == "demo"
    demo_size: int = Field(256, ge=32)


class ShapeBankConfig(Section):
    min_area: int = Field(12, ge=1)  # objects smaller than this (px) are noise, not shapes
    max_shapes: int = Field(20_000, ge=1)
    # Cap on the edge-correction weight of whole objects (see masks/shape_bank.py): 4 = objects up
    # to about half the image side get their full correction; bigger ones are not over-drawn.
    max_edge_weight: float = Field(4.0, ge=1.0)


class MasksConfig(Section):
    """Synthetic instance masks: where they come from and how many."""

    count: int = Field(1000, ge=1)
    size: int = Field(128, ge=16)  # square masks, pixels
    # Fractions of `count` per mask source (normalised); the sources are pipeline/masks/sources.py
    # MASK_SOURCES (placement, segmodel, progan, ...).
    sources: dict[str, float] = Field(default_factory=lambda: {"placement": 1.0})
    overlap: Literal["none", "touch", "any"] = "touch"  # may objects touch / overlap?
    max_overlap: float = Field(0.15, ge=0.0, le=1.0)  # fraction of a shape allowed under others ("any")
    # Placement with clusters: the probability that a shape is put against one already on the
    # canvas (slid out from it along a random direction until it no longer overlaps) instead of at a
    # random place. "auto": the rate at which the real objects of the canvas's shape pool touch
    # another object; 0: independent places (touching only by chance). Needs overlap touch or any.
    clustering: Literal["auto"] | Annotated[float, Field(ge=0.0, le=1.0)] = "auto"
    scale_jitter: float = Field(0.2, ge=0.0, le=1.0)  # +-relative scale applied to bank shapes
    scale: float | None = Field(None, gt=0)  # None: match real object sizes after resizing to `size`
    border_truncation: bool = True  # shapes may be cut by the image border, as in real crops
    # Shapes for one placement mask come from the real images closest in object density to the
    # image whose density set the count (1 = that image's own shapes): dense images hold small
    # objects, so drawing from every image would over-fill dense canvases with large shapes.
    shape_pool_images: int = Field(5, ge=1)
    # At least this many objects per mask. 0 keeps the real count distribution; rare-object sets
    # (one defect in a few images) otherwise give mostly empty masks that teach pretraining nothing.
    min_objects: int = Field(0, ge=0)
    # realmask source (masks/realmask.py): the real training masks reused as layouts, so canvases
    # keep the real density and touching clusters. Each canvas is a crop of a real mask after a
    # random flip / rot90, scale (masks.scale or 1) * (1 +- realmask_scale_jitter) and a smooth
    # elastic warp moving pixels by up to realmask_elastic px (0 = off); with probability
    # realmask_mosaic it is a 2x2 mosaic of four such half-size crops (more real images per canvas).
    realmask_scale_jitter: float = Field(0.2, ge=0.0, lt=1.0)
    realmask_elastic: float = Field(3.0, ge=0.0)
    realmask_mosaic: float = Field(0.25, ge=0.0, le=1.0)
    seed: int = 0
    workers: int = Field(2, ge=1)
    segmodel_min_score: float = Field(0.5, ge=0.0, le=1.0)
    progan_steps: int = Field(2000, ge=1)


class GeneratorConfig(Section):
    """Mask-to-image generator training (SPADE or U-GAT-IT)."""

    model: str = "spade"  # a synthesis method: pipeline/generators/methods.py SYNTHESIS_METHODS
    image_size: int = Field(128, ge=16)
    channels: int = Field(32, ge=4)  # base width; 64 is the paper-sized GPU setting
    batch_size: int = Field(4, ge=1)
    steps: int = Field(1500, ge=1)  # the cap: with a judge and patience > 0 training stops at its plateau first
    lr_g: float = Field(1e-4, gt=0)
    lr_d: float = Field(4e-4, gt=0)  # two-timescale update rule
    # Adam betas; None = the architecture's paper value (SPADE (0, 0.9), U-GAT-IT (0.5, 0.999);
    # GeneratorModel.adam_betas)
    beta1: float | None = Field(None, ge=0.0, lt=1.0)
    beta2: float | None = Field(None, ge=0.0, lt=1.0)
    ema: float = Field(0.999, ge=0.0, lt=1.0)
    diffaug: str = "color,translation,cutout"  # empty string disables
    # SPADE's style encoder (a VAE: each synthetic image takes the look of a real one). "auto": on
    # when the training images differ in look (generators/appearance.py: EMPS and magnetic tiles
    # do, the demo set does not); the decision and its numbers go into the generator's options.json.
    use_vae: bool | Literal["auto"] = "auto"
    vgg_weights: str | None = None  # local VGG19 weights file for the perceptual loss (no downloads)
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    lambda_kl: float = 0.05
    # pixel L1 to the paired real image (pix2pix's term; 0 = the SPADE paper's losses only). With
    # ~100 pairs and a CPU step budget it gives meaningful images far sooner than feature matching.
    lambda_l1: float = Field(0.0, ge=0.0)
    pix2pix_lambda_l1: float = Field(100.0, ge=0.0)  # pix2pix's own L1 weight (the paper's 100)
    num_d: int = Field(2, ge=1, le=3)  # discriminator scales
    light: bool = True  # U-GAT-IT light mode
    # U-GAT-IT's identity loss (G_A2B(image) ~ image), the paper's 10. It was 0 for fear that between
    # masks and images it rewards copying the mask through; measured on EMPS it does not (the mask
    # explains 41 % of the image's variance with it, 19 % without, 46 % in real crops), and without it
    # the images follow their layouts less (docs/generators.md, "U-GAT-IT for masks").
    ugatit_identity: float = Field(10.0, ge=0.0)
    checkpoint_every: int = Field(250, ge=1)
    sample_every: int = Field(250, ge=1)
    nan_retries: int = Field(3, ge=0)
    amp: bool = True  # bf16 autocast on CUDA only
    seed: int = 0
    # --- the fidelity plateau (docs/generators.md, "Training to a plateau"): with a judge (the
    # real-only arm of the same n_real), every eval_every steps the EMA generator draws eval_layouts
    # held-out layouts (crops of the real validation masks) and the judge's object F1 against them
    # is the score; the best EMA weights become final.pt. Training stops after `patience`
    # evaluations without a min_delta gain, never before min_steps; `steps` stays the cap.
    # patience 0 = run to `steps` (without a judge training always runs to `steps`).
    eval_every: int = Field(100, ge=1)
    patience: int = Field(0, ge=0)
    min_delta: float = Field(0.01, ge=0.0)
    min_steps: int = Field(0, ge=0)
    eval_layouts: int = Field(32, ge=1)


class GenerationConfig(Section):
    count: int = Field(1000, ge=1)  # synthetic pairs to write
    styles_per_mask: int = Field(1, ge=1)
    shard_size: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)
    compile: bool = False
    seed: int = 0
    # --- copy-paste (generator.model = copypaste; docs/generators.md, "Copy-paste") ---
    # object: real objects cut by their own masks, output mask = what was pasted (image and mask
    # agree); box: the original method (box textures cut by synthetic shapes), for old results
    copypaste_mode: Literal["object", "box"] = "object"
    # real: a window of a real training image, its objects kept and labeled; inpaint: object-free
    # Telea background (box mode always uses inpaint)
    copypaste_background: Literal["real", "inpaint"] = "real"
    # poisson falls back to feather near the canvas border
    copypaste_blend: Literal["none", "feather", "poisson"] = "feather"
    copypaste_feather_px: int = Field(2, ge=0)  # blended rim half-width (px); also Poisson's seam margin
    copypaste_match_area_k: int = Field(8, ge=1)  # draw among the k bank objects nearest in log-area
    copypaste_rotation: Literal["any", "rot90", "none"] = "any"
    # Simple Copy-Paste (Ghiasi et al. 2021): scale jitter of the pasted image, [lo, hi]. The paper's
    # standard jitter (0.8-1.25), not its large one (0.1-2, tuned on COCO): on EMPS at 50 real pairs
    # joint training with 0.1-2 collapsed (F1 16.0 vs 47.8 for real_only) and with 0.8-1.25 helped
    # (57.0 vs 47.8; docs/RESULTS.md section 19): shrunken dense images and giant particles taught nothing.
    simple_cp_scale: list[float] = Field(default_factory=lambda: [0.8, 1.25], min_length=2, max_length=2)

    @model_validator(mode="after")
    def _check_scale(self) -> GenerationConfig:
        lo, hi = self.simple_cp_scale
        if not 0 < lo <= hi:
            raise ValueError(f"generation.simple_cp_scale: need 0 < lo <= hi, got {self.simple_cp_scale}")
        return self


class SegmentationConfig(Section):
    """Segmentation training. Every phase of every arm trains to its validation plateau
    (pipeline/segmentation/training.py says the rule); the step counts below are caps, not budgets."""

    arch: str = "Linknet"  # any segmentation-models-pytorch architecture name
    encoder: str = "resnet18"
    encoder_weights: str | None = None  # None, or a local weights file (never downloaded)
    target: Literal["boundary", "binary"] = "boundary"  # foreground+boundary -> watershed, or binary -> CC
    loss: Literal["dice_bce", "dice_focal"] = "dice_bce"
    image_size: int = Field(128, ge=32)
    batch_size: int = Field(8, ge=1)  # real samples per step, in every arm
    lr: float = Field(1e-3, gt=0)  # training from random weights: real_only, pretraining, joint
    finetune_lr: float = Field(3e-4, gt=0)  # real fine-tuning of pretrained weights (docs/segmentation.md: sweep)
    max_steps: int = Field(4000, ge=1)  # cap of each real-data phase (real_only, fine-tuning, joint)
    pretrain_max_steps: int = Field(4000, ge=1)  # cap of the synthetic pretraining phase
    eval_every: int = Field(100, ge=1)  # the same cadence in every arm and phase
    patience: int = Field(5, ge=0)  # evaluations without improvement before a drop / the stop; 0 = run to the cap
    min_delta: float = Field(0.005, ge=0.0)  # an improvement is at least this much validation F1
    # ... or a validation loss at least this fraction below its last improvement (training.py: object
    # F1 can stall for a thousand steps while the model is still learning). 0 = F1 only
    min_loss_delta: float = Field(0.02, ge=0.0, lt=1.0)
    min_steps: int = Field(500, ge=0)  # never stop before this (F1 sits at 0 while a model starts)
    lr_drops: int = Field(1, ge=0)  # plateaus met by lowering the learning rate before stopping
    lr_drop_factor: float = Field(0.2, gt=0.0, le=1.0)
    warmup_steps: int = Field(50, ge=0)
    # decay of the weight average that is validated, selected and saved (training.py says why);
    # 0.99 averages over roughly the last 100 steps, two evaluations at the default cadence. 0 = raw weights
    ema: float = Field(0.99, ge=0.0, lt=1.0)
    # joint arm: real samples per batch stay `batch_size`; synthetic ones come on top so that real
    # ones make up this fraction of each batch (0.5: as many synthetic as real)
    joint_real_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    joint_finetune: bool = False  # follow the joint phase with a real-only fine-tuning phase
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    n_real: list[int] = Field(default_factory=lambda: [100])  # real training pairs per study point
    arms: list[str] = Field(default_factory=lambda: ["real_only", "pretrained", "joint"])
    amp: bool = True
    # NHWC tensors for training and inference: on the 2-core CPU training steps took 7-10 % and
    # whole-image inference 7-21 % less time (bench/stages.py, RESULTS section 10); float rounding only
    channels_last: bool = True
    # Fraction of training crops forced to hold an object, drawn from the images that have one
    # (nnU-Net oversamples 33 %). For rare-object sets, where random crops are almost all empty.
    foreground_crops: float = Field(0.0, ge=0.0, le=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _check_arms(self) -> SegmentationConfig:
        from .segmentation.arms import ARMS  # light module: the registry imports nothing heavy

        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"segmentation.arms: unknown arm(s) {bad}; known: {sorted(ARMS)}")
        if not self.arms:
            raise ValueError("segmentation.arms: at least one arm")
        return self


class EvaluationConfig(Section):
    iou_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # predicted objects smaller than this (px) are dropped; "auto" = a quarter of the 5th percentile
    # of the training objects' areas (at least 8): noise fragments go, real small objects stay
    min_object_area: int | Literal["auto"] = "auto"
    fg_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # used during training's validation
    boundary_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # Post-processing is tuned per arm and seed on the validation images (then frozen for the test
    # images, predict and export): every combination of these grids, best validation F1 wins.
    tune_postprocess: bool = True
    fg_grid: list[float] = Field(default_factory=lambda: [0.3, 0.4, 0.5, 0.6, 0.7])
    boundary_grid: list[float] = Field(default_factory=lambda: [0.3, 0.5, 0.7])
    min_area_grid: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])  # x min_object_area
    # a best setting on a grid's edge is not tuned: that grid grows one step past it (area x2 or /2,
    # threshold +-0.1 within 0.05-0.95) and is scored again, at most this many times; 0 = grids as given
    grid_extensions: int = Field(4, ge=0, le=10)
    # the verdict's interval: bootstrap over test images (and seeds) of the paired F1 difference
    bootstrap: int = Field(2000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)


class QualityConfig(Section):
    """Synthetic-data quality metrics (pipeline/quality): computed after the segmentation arms."""

    enabled: bool = True
    images: int = Field(200, ge=2)  # synthetic images sampled for mask fidelity and realism
    c2st_steps: int = Field(300, ge=1)  # training steps of the real-vs-synthetic classifier
    styles: int = Field(4, ge=2)  # style codes per mask for diversity


class FilteringConfig(Section):
    """Filtering and re-sampling of synthetic pairs by a real-only segmenter's agreement with them
    (pipeline/quality/filtering.py). A section of its own, not fields of ``generation`` or
    ``quality``: stage cache keys hash whole sections, so changing a filter setting must not
    regenerate pairs (generation) or re-measure quality.

    The defaults keep today's behaviour (every generated pair, once): how much filtering helps
    depends on the generator and the set, and nothing has measured it yet; FreeMask kept roughly
    the best half to two thirds of its synthetic pairs."""

    keep_fraction: float = Field(1.0, gt=0.0, le=1.0)  # best fraction of pairs by mask fidelity; 1.0 = off
    # extra copies of the hardest kept layouts (dense, touching), as a fraction of the kept pairs; 0 = off
    hard_oversample: float = Field(0.0, ge=0.0)
    batch_size: int = Field(16, ge=1)  # images per forward pass while scoring (128 px images: cheap)


class RuntimeConfig(Section):
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch intra-op threads; None = torch's default
    num_workers: int = Field(0, ge=0)  # DataLoader workers
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None  # existing Dask scheduler; None with task_runner=dask = local cluster
    dask_workers: int = Field(2, ge=1)
    max_parallel_tasks: int = Field(1, ge=1)  # thread runner: stages already use every core, so 1 on CPU
    # bf16 autocast: auto = on CUDA and on CPUs with native bf16 (AVX512_BF16 / AMX), fp32 elsewhere
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    runs_dir: str = "runs"
    progress: bool = True


class Config(Section):
    name: str = "default"
    data: DataConfig = Field(default_factory=DataConfig)
    shape_bank: ShapeBankConfig = Field(default_factory=ShapeBankConfig)
    masks: MasksConfig = Field(default_factory=MasksConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    filtering: FilteringConfig = Field(default_factory=FilteringConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _check_sources(self) -> Config:
        from .generators.methods import SYNTHESIS_METHODS
        from .masks.sources import MASK_SOURCES  # light registries: they import nothing heavy

        if self.generator.model not in SYNTHESIS_METHODS:
            raise ValueError(f"generator.model: unknown synthesis method {self.generator.model!r}; "
                             f"known: {sorted(SYNTHESIS_METHODS)}")
        known = set(MASK_SOURCES)
        bad = set(self.masks.sources) - known
        if bad:
            raise ValueError(f"masks.sources: unknown source(s) {sorted(bad)}; known: {sorted(known)}")
        if not self.masks.sources or sum(self.masks.sources.values()) <= 0:
            raise ValueError("masks.sources: at least one source needs a positive fraction")
        return self

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named sections: part of each stage's cache key."""
        return json_hash({s: getattr(self, s).model_dump(mode="json") for s in sections})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            parts.append(f"'{loc}': {e['msg']}")
    return f"{source}: " + "; ".join(parts)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """`smoke` -> configs/smoke.yaml; anything with a suffix or separator is a path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        return p
    return CONFIG_DIR / f"{name_or_path}.yaml"


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected section.key=value")
    key, raw = text.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return keys, value


def _field_annotation(model: type[BaseModel], keys: list[str]) -> Any:
    """Type annotation of the option at ``keys`` (``masks.sources.placement`` walks into the dict's
    value type); None when the path is not an option (pydantic then reports the unknown key)."""
    ann: Any = model
    for k in keys:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(k)
            if field is None:
                return None
            ann = field.annotation
        elif get_origin(ann) is dict:
            ann = get_args(ann)[1]
        else:
            return None
    return ann


def _is_text(ann: Any) -> tuple[bool, bool]:
    """(the option holds text only, it also accepts None): ``str``, ``str | None``, ``Literal`` of
    strings. ``int | Literal["auto"]`` is not text only: there YAML typing is wanted."""
    if ann is str:
        return True, False
    if get_origin(ann) is Literal:
        return all(isinstance(a, str) for a in get_args(ann)), False
    if get_origin(ann) in (Union, types.UnionType):
        members = [a for a in get_args(ann) if a is not type(None)]
        text = bool(members) and all(_is_text(a)[0] for a in members)
        return text, len(members) < len(get_args(ann))
    return False, False


def _typed_value(keys: list[str], raw_text: str, value: Any, model: type[BaseModel]) -> Any:
    """YAML reads ``20240601`` as an int, ``2024-06-01`` as a date and ``on`` as True; a string
    option (a set name, a path, a device) wants the characters the user typed. ``null`` or an empty
    value still mean None where the option accepts None."""
    text_only, nullable = _is_text(_field_annotation(model, keys))
    if not text_only or isinstance(value, str) or (value is None and nullable):
        return value
    return raw_text.strip()


def apply_overrides(
    raw: dict, overrides: list[str] | tuple[str, ...], model: type[BaseModel] | None = None
) -> dict:
    """Apply ``section.key=value`` strings to a raw config mapping; ``model`` (default
    :class:`Config`) says which options are strings (see :func:`_typed_value`)."""
    model = model or Config
    for text in overrides:
        keys, value = parse_override(text)
        value = _typed_value(keys, text.split("=", 1)[1], value, model)
        node = raw
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{k}' is not a section")
            node = child
        node[keys[-1]] = value
    return raw


def load_config(name_or_path: str | Path = "default", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    path = resolve_config_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"{path}: config not found (built-in configs: {known})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    raw = apply_overrides(raw, list(overrides))
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, str(path))) from None
