"""Config loading, validation, overrides, base: inheritance, did-you-mean, round trip."""

import pytest
import yaml

from lstmctl import config
from lstmctl.errors import ConfigError
from tests.conftest import TINY


def test_defaults_are_filled_in(write_config):
    cfg = config.load(write_config())
    assert cfg.train.optimizer == "adam"
    assert cfg.train.loss == "auto"
    assert cfg.data["train_fraction"] == 0.5  # the dataset's own default
    assert cfg.model["num_layers"] == 1  # the model's own default
    assert cfg.model["hidden_size"] == 4  # given in the file


def test_overrides_are_parsed_as_yaml(write_config):
    cfg = config.load(write_config(), ["train.lr=0.003", "model.hidden_size=32", "train.batch_size=null", "name=other"])
    assert cfg.train.lr == 0.003
    assert cfg.model["hidden_size"] == 32
    assert cfg.train.batch_size is None
    assert cfg.name == "other"


def test_override_creates_nested_section(write_config):
    cfg = config.load(write_config(), ["train.early_stopping.patience=3"])
    assert cfg.train.early_stopping.patience == 3


@pytest.mark.parametrize("bad", ["train.lr", "=3", "train..lr=1", ".lr=1"])
def test_bad_override_form(write_config, bad):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config.load(write_config(), [bad])


def test_override_into_a_scalar_is_an_error(write_config):
    with pytest.raises(ConfigError, match="train.lr is not a section"):
        config.load(write_config(), ["train.lr.x=1"])


@pytest.mark.parametrize(
    "update, message",
    [
        ({"model.hiden_size": 8}, "unknown key 'model.hiden_size' (did you mean 'hidden_size'?)"),
        ({"train.epoch": 8}, "unknown key 'train.epoch' (did you mean 'epochs'?)"),
        ({"sede": 1}, "unknown key 'sede' (did you mean 'seed'?)"),
        ({"data.pionts": 1}, "unknown key 'data.pionts' (did you mean 'points'?)"),
        ({"train.epochs": 0}, "train.epochs: Input should be greater than or equal to 1"),
        ({"model.hidden_size": -3}, "model.hidden_size: Input should be greater than or equal to 1 (got -3)"),
        ({"train.lr": "fast"}, "train.lr: Input should be a valid number"),
        ({"train.optimizer": "adagrad"}, "train.optimizer: Input should be 'adam', 'adamw' or 'sgd'"),
        ({"device": "tpu"}, "device: String should match pattern"),
        ({"data.name": "sine_cosin"}, "unknown dataset 'sine_cosin' (did you mean 'sine_cosine'?)"),
        ({"model.name": "transformer"}, "unknown model 'transformer'"),
    ],
)
def test_validation_errors_name_the_key(write_config, update, message):
    with pytest.raises(ConfigError) as e:
        config.load(write_config(update))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_component_lists_registered_names(write_config):
    with pytest.raises(ConfigError, match="registered models: .*lstm"):
        config.load(write_config({"model.name": "nope"}))


def test_missing_sections_and_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    p = tmp_path / "empty.yaml"
    p.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        config.load(p)
    p.write_text("name: x\nmodel: {name: lstm}\n")
    with pytest.raises(ConfigError, match="missing section 'data'"):
        config.load(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        config.load(p)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ndata:\n  name: [sine\nmodel: {}\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: invalid YAML"):
        config.load(p)


def test_python_tags_are_rejected(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        config.load(p)
    assert not (tmp_path / "pwned").exists()


def test_round_trip(write_config):
    cfg = config.load(write_config(), ["train.early_stopping.patience=4", "train.scheduler.name=cosine"])
    assert config.loads(config.dump(cfg)) == cfg


def test_base_inheritance(tmp_path, write_config):
    write_config(name="parent.yaml")
    child = tmp_path / "sub" / "child.yaml"
    child.parent.mkdir()
    child.write_text("base: ../parent.yaml\nname: child\nmodel:\n  hidden_size: 7\n")
    cfg = config.load(child)
    assert cfg.name == "child"
    assert cfg.model["hidden_size"] == 7
    assert cfg.model["name"] == "lstm"  # from the base
    assert cfg.train.epochs == TINY["train"]["epochs"]


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        config.load(tmp_path / "a.yaml")


def test_json_schema_covers_components():
    schema = config.json_schema()
    data_names = {o["properties"]["name"]["const"] for o in schema["properties"]["data"]["oneOf"]}
    model_names = {o["properties"]["name"]["const"] for o in schema["properties"]["model"]["oneOf"]}
    assert "sine_cosine" in data_names and "lstm" in model_names
    lstm = next(o for o in schema["properties"]["model"]["oneOf"] if o["properties"]["name"]["const"] == "lstm")
    assert "hidden_size" in lstm["properties"]
    yaml.safe_dump(schema)  # plain data


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\nseed: *i\n")
    with pytest.raises(ConfigError, match="too large"):
        config.load(p)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(write_config, value):
    with pytest.raises(ConfigError, match="finite number"):
        config.load(write_config(), [f"data.t_start={value}"])
