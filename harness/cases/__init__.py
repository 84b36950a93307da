"""Layer 1, cases: a YAML file read safely (yamlread, limits), checked (schemacheck, build), expanded and loaded
(load: the place a case is loaded), cached across runs (parsecache); `Case` (case) and the data, shapes, types and
network facts every backend reads."""
