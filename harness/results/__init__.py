"""Layer 2, results: the bundle a run writes (bundle, outputs, pack), checked when read from elsewhere
(bundlecheck), the disk budget it writes within (budget), the folders it owns (ownership), and runs compared
(bundlediff). Knows cases, never backends."""
