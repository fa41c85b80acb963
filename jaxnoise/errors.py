"""Errors a user can act on.

Every entry point catches ``JaxnoiseError`` and prints its message without a traceback; the message
names the file, key or value at fault and says what was expected.
"""


class JaxnoiseError(Exception):
  """A problem with the user's input (file, checkpoint, config value), explained in the message."""


class AudioError(JaxnoiseError):
  """An audio file that cannot be read or does not have the expected form."""


class ConversionError(JaxnoiseError):
  """An upstream checkpoint whose keys or shapes do not fit the architecture."""


class ConfigError(JaxnoiseError):
  """A config value that is unknown, impossible or inconsistent."""
