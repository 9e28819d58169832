"""Each trainer section is declared twice, as a frozen dataclass (models/train) and in the
workflow's schema; the two must name the same keys, and every enum the schema lists must be what
the trainer accepts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from models.blendgan import LATENT_STYLES, STYLE_EMBEDDINGS
from models.train.blendgan import LATENT_AVG_SOURCES, BlendGANConfig
from models.train.config import LoopConfig
from models.train.finetune import FinetuneConfig
from models.train.psp import PSPConfig
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


@pytest.mark.parametrize("key,values", [("latent_style", LATENT_STYLES),
                                        ("style_embedding", STYLE_EMBEDDINGS),
                                        ("latent_avg", LATENT_AVG_SOURCES)])
def test_blendgan_enums_are_the_trainers(key, values):
    assert tuple(SCHEMA["properties"]["blendgan"]["properties"][key]["enum"]) == tuple(values)
