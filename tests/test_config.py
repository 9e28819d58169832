"""The config schema rejects unknown keys and explains bad values."""
import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture()
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid(config):
    validate(copy.deepcopy(config), SCHEMA)


@pytest.mark.parametrize("edit, words", [
    (lambda c: c.update(typo_key=1), "typo_key"),
    (lambda c: c["alignment"].update(sizee=3), "sizee"),
    (lambda c: c["datasets"]["style"].update(source="flickr"), "flickr"),
    (lambda c: c["lmdb"].update(sizes=[100]), "100"),
    (lambda c: c["filter"].update(max_padded_fraction=1.5), "1.5"),
    (lambda c: c["datasets"]["face"].update(source="artstation"), "artstation"),
])
def test_bad_config_is_explained(config, edit, words):
    edit(config)
    with pytest.raises(WorkflowError) as exc:
        validate(config, SCHEMA)
    assert words in str(exc.value)
