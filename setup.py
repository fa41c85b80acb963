"""jaxnoise: how robust is an environmental-sound classifier to background noise?"""
import setuptools

setuptools.setup(
    name="jaxnoise",
    version="0.1.0",
    description=(
        "JAX/Flax noise-robustness sweeps for environmental-sound classifiers "
        "(CNN10, TFNet, EfficientAT MobileNetV3, HTS-AT) with converted PyTorch weights."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["jaxnoise", "jaxnoise.*"]),
    package_data={"jaxnoise": ["data/*.csv", "data/*.json"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.30",
        "flax>=0.10",
        "optax>=0.2",
        "orbax-checkpoint>=0.6",
        "ml-collections>=0.1.1",
        "absl-py>=1.0",
        "numpy>=1.24",
        "scipy>=1.10",
        "librosa>=0.10",
        "soundfile>=0.12",
        "matplotlib>=3.7",
    ],
    extras_require={
        # Only needed to read upstream PyTorch checkpoints; the CPU build is on local disk here.
        "convert": ["torch==2.13.0"],
        # The builder prepares without TensorFlow (ArrayRecord files); tfds.load's tf.data
        # pipelines need it. tfds 4.9.10 omits its importlib_resources dependency.
        "tfds": ["tensorflow-datasets>=4.9", "array_record", "importlib_resources",
                 "tensorflow-cpu"],
        "dev": ["pytest>=7", "hypothesis>=6"],
    },
)
