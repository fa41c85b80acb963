"""What every command-line entry point shares: user errors print one clear line, not a traceback."""
import sys

from jaxnoise.errors import JaxnoiseError


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
