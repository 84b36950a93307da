"""The limits a case file must stay within, checked before anything is allocated (README, "Limits").

A conformance run executes other people's case files every night: a file over a limit is that file's
`file:line` error, never a hang, a memory blow-up or a traceback. Each limit is far above what a real Q/DQ case
needs; larger data belongs in a `.npy` file (whose header is read, not its data, to check it).
"""

from __future__ import annotations

MAX_FILE_BYTES = 4 << 20  # a case file; 4 MiB of YAML is ~500k literal numbers
MAX_MODEL_BYTES = 256 << 20  # a model file a case runs whole (`model:`): a ResNet-50 in FP32 is 100 MB
MAX_NESTING = 64  # YAML collections inside each other (a case needs about 8)
MAX_NODES = 250_000  # YAML nodes after anchors/aliases are expanded (an alias bomb stops here)
MAX_MATRIX_COMBINATIONS = 10_000  # cases one `matrix:` expands to
MAX_ELEMENTS = 1 << 26  # elements of any tensor a case makes (64 Mi; a 256 MiB float32 tensor)
MAX_NUMBER_CHARS = 200  # characters of one number written as text
MAX_NUMBER_BITS = 1100  # bits of an exact number's numerator and denominator: beyond float64 (2^1024, 2^-1074)
MAX_EXPONENT = 4096  # |n| in `a**n`
MAX_DECIMAL_EXPONENT = 400  # |e| in `1e-300`

MAX_ID_PART = 100  # characters of a case name, a matrix key or value: each becomes part of a case id and a path

# Bundles, packs and stored outputs are input too: `qdq compare` reads other machines' bundles (harness/results/bundlecheck.py).
MAX_RESULTS_BYTES = 1 << 30  # results.json, and the journal (10,000 cases x 9 backends: about 60 MB)
MAX_STORED_ARRAY_BYTES = MAX_ELEMENTS * 8  # one stored output array: the largest tensor a case makes, in float64
MAX_NPZ_MEMBERS = 4096  # arrays in one stored .npz
MAX_PACK_ENTRY_BYTES = 2 << 20  # one entry of a process's outputs pack (outputs up to 1 MiB go there)
MAX_ARCHIVE_BYTES = 4 << 30  # what one `qdq pack` archive may unpack to
MAX_ARCHIVE_MEMBERS = 1_000_000  # files in one `qdq pack` archive

# What a run writes (harness/results/budget.py).
OUTPUT_BUDGET_BYTES = 16 << 30  # stored outputs of one run, by default (or half the free disk, whichever is less)
DISK_RESERVE_BYTES = 32 << 20  # a run stops (bundle partial, "disk full") before the disk has less than this free
