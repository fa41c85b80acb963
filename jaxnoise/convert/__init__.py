"""Converting upstream PyTorch checkpoints into jaxnoise model directories.

Each family module (``cnn``, ``mobilenet``, ``htsat``, ``beats``) exposes:
  ``read_tensors(path) -> {key: np.ndarray}``: the state dict out of the upstream file layout;
  ``infer_config(arch, tensors) -> dict``: the architecture config the tensors imply;
  or, where the file carries its own config (BEATs' 'cfg'), ``read_checkpoint(path) ->
  (tensors, upstream_config)`` and ``infer_config(arch, tensors, upstream_config)``;
  ``to_flax(arch, reader, config) -> variables``: the key map, reading through a StateDictReader;
  ``HEAD_PATHS[arch]``: glob patterns of the classifier-head variables.
"""
import importlib
import pathlib

import jax

from jaxnoise.convert.keymap import StateDictReader, finish_conversion
from jaxnoise.errors import ConversionError
from jaxnoise.models import registry, store

CONVERTER_MODULES = {
    "cnn10": "jaxnoise.convert.cnn",
    "tfnet": "jaxnoise.convert.cnn",
    "panns_cnn10": "jaxnoise.convert.cnn",
    "mn": "jaxnoise.convert.mobilenet",
    "htsat": "jaxnoise.convert.htsat",
    "beats": "jaxnoise.convert.beats",
}


def converter(arch: str):
  if arch not in CONVERTER_MODULES:
    raise ConversionError(f"no converter for architecture {arch!r}; expected one of "
                          f"{sorted(CONVERTER_MODULES)}")
  return importlib.import_module(CONVERTER_MODULES[arch])


def convert_tensors(arch: str, tensors: dict, *, source: str, config_overrides=None,
                    allow_head_mismatch: bool = False, upstream_config: dict | None = None):
  """Upstream tensors -> ``(spec, variables)``, checked key by key and shape by shape.

  ``upstream_config`` is the configuration stored in the file, for families whose files carry one.
  """
  module = converter(arch)
  try:
    if upstream_config is None:
      config = module.infer_config(arch, tensors)
    else:
      config = module.infer_config(arch, tensors, upstream_config)
  except ConversionError as error:
    # The family converters see only tensors (and a stored config); name the file they refused.
    raise ConversionError(f"{source}: {error}") from None
  config.update(config_overrides or {})
  spec = registry.build_spec(arch, config)
  reader = StateDictReader(tensors, source)
  variables = module.to_flax(arch, reader, dict(spec.config))
  rng = jax.random.key(0)
  expected = jax.eval_shape(spec.init, rng)
  # Compiled: an eager init of a transformer dispatches thousands of small ops (40 s for HTS-AT).
  fresh = jax.jit(spec.init)(rng) if allow_head_mismatch else None
  variables = finish_conversion(reader, variables, expected,
                                head_paths=module.HEAD_PATHS[arch], fresh_head=fresh)
  return spec, variables


def convert_checkpoint(arch: str, src, *, config_overrides=None,
                       allow_head_mismatch: bool = False):
  """Reads the upstream file ``src`` and converts it; see ``convert_tensors``."""
  module = converter(arch)
  if hasattr(module, "read_checkpoint"):
    tensors, upstream_config = module.read_checkpoint(src)
  else:
    tensors, upstream_config = module.read_tensors(src), None
  return convert_tensors(arch, tensors, source=str(src), config_overrides=config_overrides,
                         allow_head_mismatch=allow_head_mismatch, upstream_config=upstream_config)


def convert_to_directory(arch: str, src, out, **kwargs) -> pathlib.Path:
  """Converts ``src`` and saves it as a jaxnoise model directory ``out``; returns ``out``."""
  spec, variables = convert_checkpoint(arch, src, **kwargs)
  source = {"path": str(pathlib.Path(src).absolute()), "sha256": store.file_sha256(src),
            "arch": arch, "allow_head_mismatch": bool(kwargs.get("allow_head_mismatch"))}
  return store.save_model(out, spec, variables, source=source)
