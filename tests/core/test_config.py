"""Typed config machinery: YAML -> nested dataclasses, --set overrides, errors, round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
import yaml

from semimtr_cli.core.config.loader import (
    ConfigError, OverrideError, dump_yaml, from_dict, load_config, parse_override, save_config, to_dict, type_name,
)
from semimtr_cli.core.errors import SemimtrError, UsageError, as_flag


# A schema that exercises every supported field type (test-only).
@dataclass
class Optim:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    milestones: list[int] = field(default_factory=lambda: [17, 22])
    name: Literal["adam", "adamw", "sgd"] = "adam"


@dataclass
class Source:
    path: str
    weight: float = 1.0
    labeled: bool = True


@dataclass
class Proj:
    scheme: Optional[str] = None
    hidden: int = 512


@dataclass
class Data:
    train: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    root: Optional[Path] = None
    image_size: tuple[int, ...] = (32, 128)


@dataclass
class Model:
    backbone: str = "resnet45"
    iterations: int = 3
    proj: Optional[Proj] = None
    head_weights: dict[str, float] = field(default_factory=lambda: {"vision": 1.0})


@dataclass
class Recipe:
    name: str = "run"
    seed: Optional[int] = None
    optim: Optim = field(default_factory=Optim)
    data: Data = field(default_factory=Data)
    model: Model = field(default_factory=Model)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    max_steps: int = 100
    extra: Any = None
    temperature: float | None = 0.1


@dataclass
class Required:
    train: str
    steps: int = 1

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- loading

def test_defaults_without_source():
    cfg = load_config(Recipe)
    assert cfg == Recipe()


def test_full_yaml_is_converted_with_coercions(tmp_path):
    path = write(tmp_path, """
name: paper
seed: 7
optim:
  lr: 1e-4          # PyYAML reads this as a string
  weight_decay: 0   # int accepted for float
  betas: [0.9, 0.98]
  milestones: [3, 4.0]
  name: adamw
data:
  train: /data/one   # a single path means a one-item list
  sources:
    - {path: a.lmdb, weight: 0.3}
    - {path: b.lmdb, weight: 0.7, labeled: false}
  root: /data
  image_size: [32, 100]
model:
  proj: {scheme: bilstm}
  head_weights: {vision: 1, language: 0.5}
precision: bf16
max_steps: 1e3
extra: {anything: [1, 2]}
temperature: null
""")
    cfg = load_config(Recipe, path)
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.weight_decay == 0.0 and isinstance(cfg.optim.weight_decay, float)
    assert cfg.optim.betas == (0.9, 0.98)
    assert cfg.optim.milestones == [3, 4] and all(isinstance(m, int) for m in cfg.optim.milestones)
    assert cfg.optim.name == "adamw"
    assert cfg.data.train == ["/data/one"]
    assert cfg.data.sources == [Source("a.lmdb", 0.3), Source("b.lmdb", 0.7, False)]
    assert cfg.data.root == Path("/data")
    assert cfg.data.image_size == (32, 100)
    assert cfg.model.proj == Proj(scheme="bilstm", hidden=512)
    assert cfg.model.head_weights == {"vision": 1.0, "language": 0.5}
    assert cfg.precision == "bf16" and cfg.max_steps == 1000 and cfg.seed == 7
    assert cfg.extra == {"anything": [1, 2]} and cfg.temperature is None


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(Recipe, write(tmp_path, "")) == Recipe()


def test_unknown_key_names_file_dotted_key_and_suggestion(tmp_path):
    path = write(tmp_path, "optim:\n  lrr: 0.1\n", "x.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(Recipe, path)
    assert str(err.value) == f"{path}: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"


def test_unknown_key_in_wrong_section_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"unknown key 'lr' \(did you mean 'optim.lr'\?\)"):
        from_dict(Recipe, {"lr": 0.1}, source="r.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'data.sources\[1\].wieght' \(did you mean "
                                          r"'data.sources\[1\].weight'\?\)"):
        from_dict(Recipe, {"data": {"sources": [{"path": "a"}, {"path": "b", "wieght": 1}]}})
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'$"):
        from_dict(Recipe, {"zzz": 1})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optim": {"lr": "fast"}}, "'optim.lr' must be float, got 'fast' (str)"),
        ({"max_steps": 2.5}, "'max_steps' must be int, got 2.5 (float)"),
        ({"max_steps": True}, "'max_steps' must be int, got True (bool)"),
        ({"data": {"sources": [{"path": "a", "labeled": "yes"}]}},
         "'data.sources[0].labeled' must be bool, got 'yes' (str)"),
        ({"precision": "fp64"}, "'precision' must be one of 'fp32', 'bf16', 'fp16', got 'fp64'"),
        ({"optim": {"betas": [0.9]}}, "'optim.betas' must have 2 items"),
        ({"optim": {"milestones": [1, "x"]}}, "'optim.milestones[1]' must be int, got 'x' (str)"),
        ({"model": {"head_weights": {"vision": "heavy"}}}, "'model.head_weights.vision' must be float"),
        ({"optim": 3}, "'optim' must be mapping (Optim), got 3 (int)"),
        ({"seed": "abc"}, "'seed' must be int or null, got 'abc' (str)"),
        ({"data": {"sources": [{"weight": 1}]}}, "missing key 'data.sources[0].path' (str)"),
        ({"name": None}, "'name' must be str, got None (NoneType)"),
    ],
)
def test_type_errors_name_key_type_and_value(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(Recipe, data, source="r.yaml")
    assert str(err.value).startswith("r.yaml: ")
    assert message in str(err.value)


def test_post_init_validation_and_required_fields():
    with pytest.raises(ConfigError, match="missing key 'train'"):
        load_config(Required, {})
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        load_config(Required, {"train": "a", "steps": 0})
    assert load_config(Required, None, ["train=a.lmdb"]) == Required("a.lmdb")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(Recipe, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"recipe.yaml: line \d+, column \d+: invalid YAML"):
        load_config(Recipe, write(tmp_path, "optim:\n  lr: [1, 2\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Recipe, write(tmp_path, "- a\n- b\n"))
    assert issubclass(ConfigError, SemimtrError)


# --------------------------------------------------------------------------- overrides

def test_overrides_after_yaml(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 1e-4\ndata:\n  sources: [{path: a}, {path: b}]\n")
    cfg = load_config(Recipe, path, [
        "optim.lr=3e-4",
        "data.train=[a,b]",
        "model.backbone=timm/resnet18",
        "model.proj.hidden=256",        # Optional dataclass absent in the file: created
        "model.head_weights.language=0.5",
        "data.sources.1.weight=0.7",
        "seed=3",
        "optim.betas=[0.8, 0.9]",
        "temperature=",                  # empty value -> null
    ])
    assert cfg.optim.lr == 3e-4
    assert cfg.data.train == ["a", "b"]
    assert cfg.model.backbone == "timm/resnet18"
    assert cfg.model.proj == Proj(scheme=None, hidden=256)
    assert cfg.model.head_weights == {"vision": 1.0, "language": 0.5}
    assert cfg.data.sources == [Source("a"), Source("b", weight=0.7)]
    assert cfg.seed == 3 and cfg.optim.betas == (0.8, 0.9) and cfg.temperature is None


def test_override_of_default_list_element():
    cfg = load_config(Recipe, None, ["optim.milestones.0=5"])
    assert cfg.optim.milestones == [5, 22]


def test_later_override_wins_and_overrides_are_not_shared():
    base = {"optim": {"lr": 0.1}}
    cfg = load_config(Recipe, base, ["optim.lr=0.2", "optim.lr=0.3"])
    assert cfg.optim.lr == 0.3 and base == {"optim": {"lr": 0.1}}


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=3", "--set optim.lrr=3: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"),
        ("optim.lr=abc", "--set optim.lr=abc: 'optim.lr' must be float, got 'abc' (str)"),
        ("precision=fp64", "'precision' must be one of"),
        ("optim.lr.x=1", "'optim.lr' is float and has no sub-key 'x'"),
        ("data.sources.3.path=x", "index 3 out of range for 'data.sources' (0 items)"),
        ("data.sources.first=x", "'data.sources' is a list"),
        ("model.proj={hiden: 3}", "unknown key 'model.proj.hiden' (did you mean 'model.proj.hidden'?)"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(OverrideError) as err:
        load_config(Recipe, None, [override])
    assert message in err.value.render(as_flag)  # what the CLI prints
    assert "--" not in str(err.value)  # the library names the parameter, not the flag
    assert err.value.exit_code == 2 and isinstance(err.value, UsageError)


def test_malformed_overrides_are_usage_errors():
    for text in ["optim.lr", "=3", "optim..lr=1", "a b=1", "x=[1,"]:
        with pytest.raises(UsageError):
            parse_override(text)
    assert parse_override("optim.lr=3e-4") == (["optim", "lr"], "3e-4")
    assert parse_override("data.train=[a,b]") == (["data", "train"], ["a", "b"])
    assert parse_override("a.b=x=y") == (["a", "b"], "x=y")
    with pytest.raises(OverrideError) as err:
        parse_override("optim.lr")
    assert err.value.render(as_flag) == "--set 'optim.lr': expected KEY=VALUE, e.g. --set optim.lr=3e-4"
    assert str(err.value) == "set 'optim.lr': expected KEY=VALUE, e.g. set optim.lr=3e-4"


# --------------------------------------------------------------------------- output

def test_save_load_round_trip(tmp_path):
    cfg = load_config(Recipe, {
        "seed": 1,
        "optim": {"lr": 3e-5, "betas": [0.5, 0.6], "name": "sgd"},
        "data": {"train": ["x"], "sources": [{"path": "u", "weight": 0.25, "labeled": False}], "root": "/r"},
        "model": {"proj": {"scheme": "linear_per_column"}, "head_weights": {"a": 2}},
        "extra": {"k": [1, "two"]},
        "temperature": 1e-12,
    })
    out = save_config(cfg, tmp_path / "run" / "config.yaml", header="resolved config\nsecond line")
    text = out.read_text()
    assert text.startswith("# resolved config\n# second line\n")
    assert load_config(Recipe, out) == cfg
    assert [p.name for p in out.parent.iterdir()] == ["config.yaml"]  # no temp file left
    assert yaml.safe_load(dump_yaml(cfg)) == to_dict(cfg)


def test_to_dict_is_plain():
    d = to_dict(Recipe(data=Data(root=Path("/x"))))
    assert d["optim"]["betas"] == [0.9, 0.999]
    assert d["data"]["root"] == "/x"
    assert list(d) == ["name", "seed", "optim", "data", "model", "precision", "max_steps", "extra", "temperature"]
    assert load_config(Recipe, Recipe(seed=5)) == Recipe(seed=5)
    with pytest.raises(TypeError):
        to_dict({"a": 1})


def test_type_names():
    assert type_name(Optional[float]) == "float or null"
    assert type_name(list[int]) == "list[int]"
    assert type_name(tuple[int, ...]) == "tuple[int, ...]"
    assert type_name(Optim) == "mapping (Optim)"
