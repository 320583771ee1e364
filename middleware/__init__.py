"""Pipeline stages, one module each, named in config `pipeline:` (see router/pipeline.py)."""
