"""What every command-line entry point shares: user errors print one clear line, not a traceback."""
import json
import sys

from jaxnoise.errors import ConfigError, JaxnoiseError


def architecture_overrides(config_json, num_classes=None) -> dict:
  """The ``--config JSON`` and ``--num-classes`` options of the model CLIs as one overrides dict."""
  overrides = {}
  if config_json:
    try:
      overrides = json.loads(config_json)
    except json.JSONDecodeError as error:
      raise ConfigError(f"--config is not a JSON object: {error}") from None
    if not isinstance(overrides, dict):
      raise ConfigError(f"--config must be a JSON object of config keys, e.g. "
                        f"'{{\"num_classes\": 19}}', got {config_json!r}")
  if num_classes is not None:
    overrides["num_classes"] = num_classes
  return overrides


def run_main(main, argv=None) -> int:
  """Runs ``main(argv)``; a JaxnoiseError becomes ``error: <message>`` on stderr and exit code 2."""
  try:
    return main(argv) or 0
  except JaxnoiseError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130
