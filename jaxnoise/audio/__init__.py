"""Audio loading, resampling, filterbanks and the three log-mel frontends."""
