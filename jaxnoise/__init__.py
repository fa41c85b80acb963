"""jaxnoise: measure how background noise degrades environmental-sound classifiers, in JAX."""

__version__ = "0.1.0"
