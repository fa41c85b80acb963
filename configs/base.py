"""Settings every experiment shares; the per-model configs start from ``get_config()`` here.

Every value can be overridden on the command line, e.g.
  python launch.py --config=configs/htsat.py --workdir=runs/htsat --config.sweep.snrs='(-20,0,20)'
"""
import ml_collections

# The study's SNR grid in dB (accuracy-vs-SNR figures).
STUDY_SNRS = (-30, -25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25, 30)
COLORED_NOISES = ("white", "pink", "brown", "blue", "violet")


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Which stages launch.py runs, in order: any of 'train', 'sweep', 'report'.
  config.modes = ("train", "sweep", "report")

  config.model = ml_collections.ConfigDict()
  config.model.arch = "cnn10"             # cnn10 | tfnet | panns_cnn10 | mn | htsat
  config.model.name = ""                  # label in tables and plots; defaults to arch
  config.model.overrides = ml_collections.ConfigDict()  # architecture config (width, ...)
  # A converted model directory, or an upstream PyTorch checkpoint converted on the fly and cached.
  config.model.checkpoint = ""
  config.model.allow_head_mismatch = True  # fine-tuning starts a new head for the ESC classes

  config.data = ml_collections.ConfigDict()
  config.data.root = ""                   # ESC-50 in its native layout (audio/, meta/esc50.csv)
  config.data.cache_dir = "~/.cache/jaxnoise"
  config.data.classes = "esc19"           # esc19 | esc50 | comma-separated ESC-50 targets
  config.data.dropped_class = "clock_tick"  # the class esc19 drops from targets 20-39
  config.data.test_folds = (1, 2, 3, 4, 5)  # one rotation per test fold present in the data
  config.data.convert_audio = True        # stereo / other rates are converted, not rejected
  config.data.download = True             # fetch the official archive into cache_dir if no root
  # 0: the dataset's own folds; k >= 2: a seeded re-split into k folds keeping clips of one source
  # recording (ESC-50's src_file) together (jaxnoise.data.splits), written to <workdir>/folds.csv.
  config.data.split_folds = 0
  config.data.split_seed = 0

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64            # global: split over all devices
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
  # Clips per compiled call: memory stays flat. 8 suits a CPU (mn04 and HTS-AT ran fastest with
  # 8 clips per network call there; raise it on an accelerator).
  config.sweep.chunk_clips = 8
  config.sweep.save_logits = False
  config.sweep.folds = ()                 # test folds to sweep; () = every fold in the data
  # Folders of ESC-50-named clips (FOLD-SRC-TAKE-TARGET.wav) for esc50:<class> noises whose class
  # the data copy lacks (e.g. ../shared/data/noise/esc50).
  config.sweep.esc50_noise_dirs = ()
  config.sweep.snr_devices = 0            # devices along the mesh's SNR axis; 0 = automatic
  # SNRs per network call inside a chunk: 0 = all (one vmap), k = groups of k in sequence;
  # -1 = automatic (CPU: about 8 clips x SNRs per call, which ran mn04 ~1.9x faster than one
  # call of 16 clips x 13 SNRs; accelerators: all at once).
  config.sweep.snr_batch = -1

  config.report = ml_collections.ConfigDict()
  config.report.confusion_snrs = (-25, -10)
  config.report.spectrogram_snr = 10
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
