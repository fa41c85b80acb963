"""Model families by name.

Each family module exposes ``DEFAULT_CONFIG`` (dict) and ``build_spec(config) -> ModelSpec``.
Modules are imported on first use so that loading one family does not build the others.
"""
import importlib

from jaxnoise.errors import ConfigError

FAMILY_MODULES = {
    "cnn10": "jaxnoise.models.cnn10",
    "tfnet": "jaxnoise.models.tfnet",
    "panns_cnn10": "jaxnoise.models.panns_cnn10",
    "mn": "jaxnoise.models.mobilenet",
    "htsat": "jaxnoise.models.htsat",
    "beats": "jaxnoise.models.beats",
}


def family(arch: str):
  """The module implementing ``arch``; a ConfigError lists the known names otherwise."""
  if arch not in FAMILY_MODULES:
    raise ConfigError(f"unknown model architecture {arch!r}; expected one of "
                      f"{sorted(FAMILY_MODULES)}")
  return importlib.import_module(FAMILY_MODULES[arch])


def default_config(arch: str) -> dict:
  return dict(family(arch).DEFAULT_CONFIG)


def build_spec(arch: str, config: dict | None = None):
  """A ``ModelSpec`` for ``arch`` with ``config`` overriding the family's defaults.

  Unknown config keys are an error rather than silently ignored.
  """
  module = family(arch)
  merged = dict(module.DEFAULT_CONFIG)
  unknown = sorted(set(config or {}) - set(merged))
  if unknown:
    raise ConfigError(f"unknown config key(s) {unknown} for model {arch!r}; known keys: "
                      f"{sorted(merged)}")
  merged.update(config or {})
  return module.build_spec(merged)
