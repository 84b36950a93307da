"""The limits a case file must stay within, checked before anything is allocated (README, "Limits").

A conformance run executes other people's case files every night: a file over a limit is that file's
`file:line` error, never a hang, a memory blow-up or a traceback. Each limit is far above what a real Q/DQ case
needs; larger data belongs in a `.npy` file (whose header is read, not its data, to check it).
"""

from __future__ import annotations

MAX_FILE_BYTES = 4 << 20  # a case file; 4 MiB of YAML is ~500k literal numbers
MAX_NESTING = 64  # YAML collections inside each other (a case needs about 8)
MAX_NODES = 250_000  # YAML nodes after anchors/aliases are expanded (an alias bomb stops here)
MAX_MATRIX_COMBINATIONS = 10_000  # cases one `matrix:` expands to
MAX_ELEMENTS = 1 << 26  # elements of any tensor a case makes (64 Mi; a 256 MiB float32 tensor)
MAX_NUMBER_CHARS = 200  # characters of one number written as text
MAX_NUMBER_BITS = 1100  # bits of an exact number's numerator and denominator: beyond float64 (2^1024, 2^-1074)
MAX_EXPONENT = 4096  # |n| in `a**n`
MAX_DECIMAL_EXPONENT = 400  # |e| in `1e-300`

MAX_ID_PART = 100  # characters of a case name, a matrix key or value: each becomes part of a case id and a path
