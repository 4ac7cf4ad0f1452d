"""Model families, one module each; each registers its builder when imported.

lstmctl.config imports the built-in families (which registers them); this package imports
nothing, so that `lstmctl.models.base` can be imported without pulling in every family.
"""
