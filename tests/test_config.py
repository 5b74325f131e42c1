import pytest

import types
import typing

from mucon.config import SETTING_RANGES, ConfigError, RunConfig, apply_overrides, from_dict, load_config, save_config

from conftest import CONFIGS


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_preset_loads_and_round_trips(preset, tmp_path):
    config = load_config(CONFIGS / preset)
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_overrides_reach_nested_keys_with_yaml_types():
    config = load_config(CONFIGS / "clmr-cpu.yaml", ["trainer.max_steps=7", "optimizer.lr=0.01", "trainer.devices=[0,1]"])
    assert config.trainer.max_steps == 7
    assert config.optimizer.lr == 0.01
    assert config.trainer.devices == [0, 1]


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="max_step"):
        load_config(CONFIGS / "clmr-cpu.yaml", ["trainer.max_step=7"])


def test_wrong_type_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        from_dict(RunConfig, {"method": {"name": "clmr"}, "encoder": {"name": "x"}, "trainer": {"max_steps": "many"}})


def test_malformed_override_is_rejected():
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["max_steps"])



def _numeric(annotation) -> bool:
    """int, float, a list of them, or either or None."""
    if typing.get_origin(annotation) is list:
        return _numeric(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(_numeric(option) or option is type(None) for option in typing.get_args(annotation))
    return annotation in (int, float)


def test_every_numeric_setting_of_the_run_and_of_every_method_has_a_range():
    from mucon.config import DataConfig, OptimizerConfig, TrainerConfig
    from mucon.methods import METHODS, Composed

    sections = [("", RunConfig), ("data.", DataConfig), ("optimizer.", OptimizerConfig), ("trainer.", TrainerConfig),
                *[("method.", method.Params) for method in [*METHODS.values(), Composed]]]
    numeric = {f"{prefix}{name}" for prefix, cls in sections
               for name, annotation in typing.get_type_hints(cls).items() if _numeric(annotation)}
    assert "method.temperature" in numeric and "trainer.max_steps" in numeric
    assert sorted(numeric - set(SETTING_RANGES)) == []
