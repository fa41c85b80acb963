"""The 'report' mode: robustness metrics, the study's figures, tables and a summary page.

  metrics   accuracy, confusion, accuracy-vs-SNR area, half-accuracy SNR, collapse rate
  plots     accuracy vs SNR (all models), confusion matrices, spectrograms clean vs noisy
  tables    nominal noise power per model band, model complexity, accuracy by SNR
  page      write_report(config, workdir): everything above plus index.md / index.html
"""
