"""Settings every experiment shares; the per-model configs start from ``get_config()`` here.

Every value can be overridden on the command line, e.g.
  python launch.py --config=configs/htsat.py --workdir=runs/htsat --config.sweep.snrs='(-20,0,20)'
"""
import ml_collections

# The study's SNR grid in dB (accuracy-vs-SNR figures).
STUDY_SNRS = (-30, -25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25, 30)
COLORED_NOISES = ("white", "pink", "brown", "blue", "violet")
# The training recipes a model config offers as ``--config=configs/X.py:RECIPE``: "study" (the
# default: the study's protocol where it speaks, upstream otherwise) or "upstream".
RECIPES = ("study", "upstream")


def variant_words(variant: str, known: tuple) -> set:
  """The comma-separated words of ``--config=FILE:VARIANT`` (ml_collections passes VARIANT to
  ``get_config``); ValueError naming the known words for any other."""
  words = {word.strip() for word in (variant or "").split(",") if word.strip()}
  unknown = sorted(words - set(known))
  if unknown:
    raise ValueError(f"config variant {variant!r}: unknown word(s) {unknown}; expected "
                     f"comma-separated words of {', '.join(known)}")
  if len(words & set(RECIPES)) > 1:
    raise ValueError(f"config variant {variant!r}: choose one recipe of {', '.join(RECIPES)}")
  return words


def study_protocol(config):
  """The study's evaluation settings (its sections 4.2 and 4.2.2) on top of any recipe."""
  config.sweep.model_fold = "best"
  config.sweep.colored_generator = "study"
  return config


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Which stages launch.py runs, in order: any of 'train', 'sweep', 'report'.
  config.modes = ("train", "sweep", "report")
  # JAX's persistent compilation cache: a rerun, a resumed run or another run of the same model
  # loads the compiled sweep and training step from here instead of compiling them again (tens of
  # seconds per model on a CPU). False compiles every time.
  config.compile_cache = True
  config.cache_dir = "~/.cache/jaxnoise/xla"

  config.model = ml_collections.ConfigDict()
  config.model.arch = "cnn10"             # cnn10 | tfnet | panns_cnn10 | mn | htsat | beats
  config.model.name = ""                  # label in tables and plots; defaults to arch
  config.model.overrides = ml_collections.ConfigDict()  # architecture config (width, ...)
  # A converted model directory, or an upstream PyTorch checkpoint converted on the fly and cached.
  config.model.checkpoint = ""
  config.model.allow_head_mismatch = True  # fine-tuning starts a new head for the ESC classes
  # AudioSet heads classify zero-shot: a JSON {dataset label: [AudioSet class names]} for labels
  # other than ESC-50's ('' = the built-in ESC-50 map). `python -m jaxnoise.data.label_map
  # --labels <dataset>` prints a suggestion to edit.
  config.model.label_map = ""

  config.data = ml_collections.ConfigDict()
  # Where the clips come from (jaxnoise/data/sources.py): esc50 | folder | csv | urbansound8k |
  # tfds:<name>. Every stage reads the same records, whichever source.
  config.data.source = "esc50"
  # esc50: its native layout (audio/, meta/esc50.csv; '' = the cache, or a download); folder: one
  # sub-folder per class; csv: the manifest (path,label[,fold]); urbansound8k: its native layout;
  # tfds: the manual_dir of a builder that needs one.
  config.data.root = ""
  config.data.cache_dir = "~/.cache/jaxnoise"
  # esc19 | esc20 | esc50 (ESC-50 names, on any source labelled with them) | all | comma-separated
  # labels or class positions.
  config.data.classes = "esc19"
  config.data.dropped_class = "clock_tick"  # the class esc19 drops from targets 20-39
  config.data.test_folds = (1, 2, 3, 4, 5)  # one rotation per test fold present in the data
  config.data.convert_audio = True        # stereo / other rates are converted, not rejected
  config.data.download = True             # fetch the official archive into cache_dir if no root
  # 0 = the source's own folds (a source without folds gets 5, seeded); k >= 2 = re-split into k
  # folds (stratified, clips of one source recording together). The split used: <workdir>/folds.csv.
  config.data.split_folds = 0
  config.data.split_seed = 0
  # How a file becomes the model's input (jaxnoise/data/clips.py): first | center | pad | windows.
  config.data.clip_policy = "first"
  # False: an unreadable or truncated file stops the run, naming it. True: it is skipped and listed
  # in run.json / data.json, and counted in the report.
  config.data.skip_bad_files = False
  # tfds:<name> sources: where the prepared dataset lives and which features to read.
  config.data.tfds = ml_collections.ConfigDict()
  config.data.tfds.data_dir = ""          # '' = TFDS's default (~/tensorflow_datasets)
  config.data.tfds.audio_key = "audio"
  config.data.tfds.label_key = "label"    # a ClassLabel feature
  config.data.tfds.fold_key = ""          # an integer feature holding folds ('' = splits foldN)
  config.data.tfds.group_key = ""         # the source recording ('' = each example its own)
  config.data.tfds.name_key = ""          # a file name feature ('' = <split>/<index>)
  config.data.tfds.sample_rate = 0        # 0 = the audio feature's own (tfds.features.Audio)
  config.data.tfds.splits = ()            # () = every split

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64            # global: split over all devices
  # XLA devices training splits the host CPU into, the batch split over them (jaxnoise.runtime.
  # distributed.use_cpu_devices; a sweep later in the same process keeps them); 0 = JAX's choice
  # (one, or XLA_FLAGS' --xla_force_host_platform_device_count). No effect on a GPU/TPU backend.
  config.train.cpu_devices = 0
  # glibc keeps the memory XLA frees, so a step's temporaries are not faulted in again every step
  # (jaxnoise.runtime.memory): the mn04 step on one CPU device 1.3-1.5x faster; with two devices
  # (HTS-AT) it ran slower, and the heap grows by whole steps' temporaries before it settles (CNN10,
  # batch 64: 5.1 -> 12.5 GB resident in 5 steps), so it is off unless asked for. Acts only before
  # JAX's first computation in the process.
  config.train.retain_freed_memory = False
  config.train.steps = 4500
  config.train.epochs = 0.0               # > 0: this many passes over the training folds instead
  config.train.optimizer = "adam"         # adam | amsgrad | adamw | sgd
  config.train.learning_rate = 1e-3
  # constant | step_decay | warmup_linear_down | epoch_table (jaxnoise/train/optim.py)
  config.train.schedule = "constant"
  config.train.lr_decay_every = 100       # step_decay: multiply by lr_decay_rate every N steps
  config.train.lr_decay_rate = 0.9
  config.train.warmup_epochs = 0.0        # warmup_linear_down (EfficientAT)
  config.train.rampdown_start_epoch = 0.0
  config.train.rampdown_epochs = 0.0
  config.train.final_lr_factor = 1.0
  config.train.epoch_boundaries = (0,)    # epoch_table (HTS-AT): factor i from epoch i on
  config.train.epoch_factors = (1.0,)
  config.train.warmup_steps = 0           # linear warm-up on top of any schedule
  config.train.weight_decay = 0.0
  # Per-step augmentation, applied round robin: none | mask | mixup | mask+mixup.
  config.train.augment_cycle = ("mask",)
  config.train.mixup_alpha = 0.0          # 0 disables mixup
  config.train.mixup_targets = True       # False: mix inputs only, keep each clip's own label
  config.train.time_masks = 2
  config.train.time_mask_width = 4
  config.train.freq_masks = 2
  config.train.freq_mask_width = 4
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 2
  config.train.log_every = 50
  config.train.eval_every = 0             # test-fold accuracy every N steps (0: at the end only)
  # highest: float32 results as on a CPU | default: the backend's fast float32 matmuls (TF32 on
  # GPUs, bfloat16 passes on TPUs) | bfloat16: weights and activations in bfloat16 (the optimiser
  # keeps float32 weights). jaxnoise/models/precision.py.
  config.train.precision = "highest"
  # Noise augmentation inside the jitted step (jaxnoise/train/noise_augment.py): with probability
  # `probability` per clip and step, a noise of the pool at an in-band SNR ~ U(snr_low, snr_high)
  # dB, mixed exactly as the sweep mixes. `noises` takes the names of config.sweep.noises; the
  # default pool, three colors drawn fresh per clip and step, shares no recording with the default
  # sweep noises. A recording the sweep also tests with is refused unless allow_overlap.
  config.train.noise_augment = ml_collections.ConfigDict()
  config.train.noise_augment.enabled = False
  config.train.noise_augment.probability = 0.5
  config.train.noise_augment.snr_low = -10.0
  config.train.noise_augment.snr_high = 20.0
  config.train.noise_augment.noises = ("white", "pink", "brown")
  config.train.noise_augment.weights = ()   # one per resolved noise; () = equal
  config.train.noise_augment.allow_overlap = False

  config.sweep = ml_collections.ConfigDict()
  config.sweep.noises = COLORED_NOISES + ("esc50:dog", "esc50:rain", "esc50:car_horn",
                                          "esc50:engine", "esc50:train")
  config.sweep.noise_paths = ()           # extra recorded noises: files or folders
  config.sweep.snrs = STUDY_SNRS
  config.sweep.realisations = 1           # K noise draws per type (mean and 95% interval)
  config.sweep.fresh_noise_per_clip = False  # the study mixes one nominal realisation into all
  # Which trained fold model(s) of this workdir are swept: "all" (each on its own test fold),
  # "best" (highest test accuracy in training, ties to the lower fold: the study's choice) or a
  # fold number.
  config.sweep.model_fold = "all"
  # How colors are shaped (jaxnoise/noise/colored.py): "psd" (f ** exponent, DC zeroed) or "study"
  # (the study's MATLAB routine: bin i from 1 at DC times i ** (exponent / 2)).
  config.sweep.colored_generator = "psd"
  # Clips per compiled call: memory stays flat. 8 suits a CPU (mn04 and HTS-AT ran fastest with
  # 8 clips per network call there; raise it on an accelerator).
  config.sweep.chunk_clips = 8
  config.sweep.save_logits = False
  config.sweep.folds = ()                 # test folds to sweep; () = every fold in the data
  # A set of labelled clips to sweep instead of the test folds, read through the data sources
  # (config.sweep.inference_source: '' = detected: ESC-50 layout, UrbanSound8K, a CSV manifest,
  # else one folder per class). The classes decided among are the model's; clips of a class the
  # model lacks are an error.
  config.sweep.inference_root = ""
  config.sweep.inference_source = ""
  # Folders of ESC-50-named clips (FOLD-SRC-TAKE-TARGET.wav) for esc50:<class> noises whose class
  # the data copy lacks (e.g. ../shared/data/noise/esc50).
  config.sweep.esc50_noise_dirs = ()
  config.sweep.snr_devices = 0            # devices along the mesh's SNR axis; 0 = automatic
  # SNRs per network call inside a chunk: 0 = all (one vmap), k = groups of k in sequence;
  # -1 = automatic (CPU: about 8 clips x SNRs per call, which ran mn04 ~1.9x faster than one
  # call of 16 clips x 13 SNRs; accelerators: all at once).
  config.sweep.snr_batch = -1
  # highest | default | bfloat16 as for training; mixing and band powers stay float32 in every mode.
  config.sweep.precision = "highest"

  config.report = ml_collections.ConfigDict()
  config.report.confusion_snrs = (-25, -10)
  config.report.spectrogram_snr = 10
  # The clip of the spectrogram figures: a file name of the swept clips, or an ESC-50 target whose
  # first swept clip is shown (the study's Figs 5.2-5.20 show a class-31 clip, mouse_click).
  config.report.spectrogram_clip = "31"
  # Other runs' workdirs whose accuracy.csv is plotted beside this one (all models on one plot).
  config.report.compare_workdirs = ()
  # With compare_workdirs: the model the robustness gain table is computed against; '' = the model
  # of the first compare workdir.
  config.report.baseline_model = ""

  config.distributed = ml_collections.ConfigDict()
  config.distributed.initialize = False   # jax.distributed.initialize() for multi-host runs
  config.distributed.coordinator_address = ""
  config.distributed.num_processes = 0
  config.distributed.process_id = -1
  return config
