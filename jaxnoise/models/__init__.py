"""Flax ports of the study's classifiers and of BEATs, described by ``ModelSpec`` records."""
from jaxnoise.models.registry import build_spec, default_config, family, FAMILY_MODULES
from jaxnoise.models.spec import ModelSpec
