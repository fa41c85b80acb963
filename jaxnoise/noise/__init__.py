"""Noise for robustness sweeps: colored and recorded noise, the study's band power, gains, mixing.

  noise = noise_by_name('pink', jax.random.key(0), num_samples, sample_rate)   # [samples]
  result = mix(clips, noise[None], snrs_db, sample_rate, band)  # noisy [clips, 1, snrs, samples]
"""
from jaxnoise.noise.colored import (COLOR_EXPONENTS, COLORS, GENERATORS, check_generator,
                                    color_exponent, colored_noise, colored_noise_batch,
                                    shape_spectrum, spectral_gains)
from jaxnoise.noise.power import (MixResult, as_band, band_indices, band_power, mix,
                                  mix_with_powers, noise_gain)
from jaxnoise.noise.recorded import (check_noise_name, load_noise_file, loop_or_cut,
                                     noise_by_name, noise_label, noise_labels)
from jaxnoise.noise.report import nominal_noise_power, plot_noise_psd, write_noise_report
