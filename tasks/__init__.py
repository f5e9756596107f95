"""Tasks: each one a layout of known frames on the one sampler (installed as vidzero.tasks)."""
