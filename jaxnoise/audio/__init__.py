"""Audio loading, resampling, filterbanks and the four log-mel frontends (the study's, BEATs')."""
