"""A TensorFlow Datasets builder ``esc50``: the five ESC-50 folds as splits ``fold1``..``fold5``.

Needs the optional ``tfds`` extra (tensorflow-datasets). Importing this module registers the
builder, so afterwards ``tfds.builder('esc50')`` and, with TensorFlow installed,
``tfds.load('esc50', split='fold4')`` find it. Without TensorFlow, prepare the data as ArrayRecord
and read it with ``builder.as_data_source()``::

  import tensorflow_datasets as tfds
  from jaxnoise.data import tfds_esc50  # registers 'esc50'
  builder = tfds_esc50.Esc50(data_dir=..., file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=ESC50_ROOT))
  fold4 = builder.as_data_source(split='fold4')

The source is a local copy in its native layout (``manual_dir``), or else the official archive,
downloaded and verified. Only the folds present in the source become splits, so the partial test
copy (fold 4 plus five clips of folds 2 and 5) yields ``fold2``, ``fold4`` and ``fold5``.
Audio is stored as the files' own int16 PCM (divide by 32768 for floats), with the ESC-50 target as
``label`` and the metadata row alongside.
"""
import pathlib

import numpy as np
import soundfile
import tensorflow_datasets as tfds

from jaxnoise.data import esc50
from jaxnoise.errors import AudioError


class Esc50(tfds.core.GeneratorBasedBuilder):
  """ESC-50: 2000 five-second environmental recordings in 50 classes, five folds."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"2.0.0": "ESC-50 v2.0.0 (karolpiczak/ESC-50), folds as splits."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Point manual_dir at a copy of ESC-50 in its native layout (audio/*.wav and "
      "meta/esc50.csv), e.g. a clone of https://github.com/karolpiczak/ESC-50. Without it the "
      f"official archive {esc50.ARCHIVE_URL} is downloaded.")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=("Environmental Sound Classification (Piczak, ACM MM 2015): 5-s clips at "
                     "44.1 kHz in 50 classes; the five folds keep clips of one source recording "
                     "together."),
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(esc50.CLIP_SAMPLES,), dtype=np.int16),
            "label": tfds.features.ClassLabel(names=esc50.CLASS_NAMES),
            "fold": np.int32,
            "filename": tfds.features.Text(),
            "src_file": tfds.features.Text(),
            "take": tfds.features.Text(),
        }),
        supervised_keys=("audio", "label"),
        homepage="https://github.com/karolpiczak/ESC-50",
        citation=("@inproceedings{piczak2015dataset, title={{ESC}: {Dataset} for {Environmental "
                  "Sound Classification}}, author={Piczak, Karol J.}, booktitle={Proceedings of "
                  "the 23rd {Annual ACM Conference} on {Multimedia}}, pages={1015--1018}, "
                  "year={2015}, publisher={ACM Press}, doi={10.1145/2733373.2806390}}"),
    )

  def _source_root(self, dl_manager) -> pathlib.Path:
    manual = getattr(dl_manager, "_manual_dir", None)
    if manual is not None and esc50.metadata_path(manual).is_file():
      return pathlib.Path(manual)
    extracted = pathlib.Path(dl_manager.download_and_extract(esc50.ARCHIVE_URL))
    root = extracted / esc50.ARCHIVE_TOP_DIR
    esc50.verify_dataset(root)
    return root

  def _split_generators(self, dl_manager):
    root = self._source_root(dl_manager)
    records = esc50.load_metadata(root)
    return {f"fold{fold}": self._generate_examples(root, [r for r in records if r.fold == fold])
            for fold in esc50.folds_present(records)}

  def _generate_examples(self, root, records):
    for record in records:
      path = esc50.audio_path(root, record)
      try:
        pcm, rate = soundfile.read(str(path), dtype="int16")
      except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"cannot read {path} as audio: {error}") from None
      if pcm.shape != (esc50.CLIP_SAMPLES,) or rate != esc50.SAMPLE_RATE:
        raise AudioError(f"{path}: shape {pcm.shape} at {rate} Hz; ESC-50 clips are mono "
                         f"{esc50.CLIP_SAMPLES} samples at {esc50.SAMPLE_RATE} Hz")
      yield record.filename, {
          "audio": pcm,
          "label": record.target,
          "fold": record.fold,
          "filename": record.filename,
          "src_file": record.src_file,
          "take": record.take,
      }
