import pytest

from pipeline.config import CONFIG_DIR, Config, ConfigError, load_config


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_builtin_configs_load(name):
    cfg = load_config(name)
    assert cfg.name == name


def test_override_changes_value_and_parses_yaml_types():
    cfg = load_config("smoke", ["segmentation.seeds=[3, 4]", "generator.model=ugatit", "masks.count=7"])
    assert cfg.segmentation.seeds == [3, 4]
    assert cfg.generator.model == "ugatit"
    assert cfg.masks.count == 7


def test_unknown_key_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown key 'masks.cuont'"):
        load_config("smoke", ["masks.cuont=3"])


def test_wrong_type_is_a_clear_error():
    with pytest.raises(ConfigError, match="masks.count"):
        load_config("smoke", ["masks.count=many"])


def test_unknown_mask_source_rejected():
    with pytest.raises(ConfigError, match="unknown source"):
        load_config("smoke", ["masks.sources={gan: 1.0}"])


def test_missing_config_names_builtins(tmp_path):
    with pytest.raises(ConfigError, match="config not found"):
        load_config(tmp_path / "nope.yaml")


def test_section_hash_changes_only_with_its_section():
    a, b = Config(), Config()
    b.segmentation.lr = 0.123
    assert a.section_hash("masks") == b.section_hash("masks")
    assert a.section_hash("segmentation") != b.section_hash("segmentation")


def test_every_yaml_in_configs_is_valid():
    for path in CONFIG_DIR.glob("*.yaml"):
        load_config(path)


@pytest.mark.parametrize("text", ["20240601", "2024-06-01", "on", "007", "1e3", "0x1F"])
def test_string_options_keep_the_text_as_typed(text):
    """YAML would read these as an int, a date, a bool, an octal, a float, a hex int: a set name is text."""
    cfg = load_config("smoke", [f"data.set={text}", f"name={text}", f"data.test_list={text}"])
    assert cfg.data.set == text and cfg.name == text and cfg.data.test_list == text


def test_string_override_quotes_and_null():
    cfg = load_config("smoke", ["data.set='my set'", "data.test_list=null", "generator.diffaug="])
    assert cfg.data.set == "my set"
    assert cfg.data.test_list is None  # optional string: null still means None
    assert cfg.generator.diffaug == ""  # required string: empty means the empty string, not None


def test_non_string_options_are_still_parsed_as_yaml():
    overrides = ["evaluation.min_object_area=20", "masks.sources={placement: 1}", "masks.scale=null"]
    cfg = load_config("smoke", overrides)
    assert cfg.evaluation.min_object_area == 20  # int | "auto": YAML typing wanted
    assert cfg.masks.sources == {"placement": 1.0}
    assert cfg.masks.scale is None
    assert load_config("smoke", ["evaluation.min_object_area=auto"]).evaluation.min_object_area == "auto"
    with pytest.raises(ConfigError, match="masks.overlap"):
        load_config("smoke", ["masks.overlap=20240601"])  # a Literal of strings: the text, then refused
