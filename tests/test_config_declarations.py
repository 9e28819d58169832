"""Each trainer section is declared twice, as a frozen dataclass (models/train) and in the
workflow's schema; the two must name the same keys, and every enum the schema lists must be what
the trainer accepts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from models.blendgan import LATENT_STYLES, STYLE_EMBEDDINGS
from models.discriminators import D_STYLE_INITS
from models.psp import IR_MODES, IR_UNITS
from models.train.blendgan import LATENT_AVG_SOURCES, BlendGANConfig
from models.train.config import LoopConfig
from models.train.finetune import FinetuneConfig
from models.train.psp import OPTIMIZERS, TRAIN_NOISE, PSPConfig
from models.train.step import COMPILE_MODES, PRECISIONS
from models.train.style_encoder import StyleEncoderConfig
from models.train.stylegan2 import StyleGAN2Config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
SECTIONS = {"style_encoder": StyleEncoderConfig, "stylegan2": StyleGAN2Config,
            "blendgan": BlendGANConfig, "psp": PSPConfig, "finetune": FinetuneConfig}
# Fine-tuning takes these from the checkpoint it starts from (or fixes them): not user keys.
FINETUNE_FROM_CHECKPOINT = {"cache_style_codes", "d_style_init", "diff_augment", "latent_avg",
                            "latent_style", "style_embedding"}


def fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_schema_section_names_the_dataclass_keys(section):
    declared = set(SCHEMA["properties"][section]["properties"])
    expected = fields(SECTIONS[section])
    if section == "finetune":
        expected -= FINETUNE_FROM_CHECKPOINT
    assert declared == expected, (f"schema only: {sorted(declared - expected)}; "
                                  f"dataclass only: {sorted(expected - declared)}")
    assert SCHEMA["properties"][section]["additionalProperties"] is False


def test_loop_definition_is_the_loop_dataclass():
    assert set(SCHEMA["definitions"]["train_loop"]["properties"]) == fields(LoopConfig)


# Every enum of a trainer section, with the constant (defined once in models/) it must equal.
ENUMS = [
    ("blendgan", "latent_style", LATENT_STYLES),
    ("blendgan", "style_embedding", STYLE_EMBEDDINGS),
    ("blendgan", "latent_avg", LATENT_AVG_SOURCES),
    ("blendgan", "d_style_init", D_STYLE_INITS),
    ("psp", "optimizer", OPTIMIZERS),
    ("psp", "train_noise", TRAIN_NOISE),
    ("psp", "mode", IR_MODES),
    ("psp", "num_layers", tuple(IR_UNITS)),
    ("train_loop", "precision", tuple(PRECISIONS)),
    ("train_loop", "compile_mode", COMPILE_MODES),
]


def schema_section(section: str) -> dict:
    if section == "train_loop":
        return SCHEMA["definitions"]["train_loop"]["properties"]
    return SCHEMA["properties"][section]["properties"]


@pytest.mark.parametrize("section,key,values", ENUMS, ids=[f"{s}.{k}" for s, k, _ in ENUMS])
def test_schema_enums_are_the_trainers(section, key, values):
    assert tuple(schema_section(section)[key]["enum"]) == tuple(values)


def test_every_trainer_enum_of_the_schema_is_checked():
    declared = {(s, k) for s in [*SECTIONS, "train_loop"]
                for k, v in schema_section(s).items() if "enum" in v}
    assert declared == {(s, k) for s, k, _ in ENUMS}
