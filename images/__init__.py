"""Recipes and the builder of the fixture images that the scanner's tests and the demo use.

``images/build.py`` turns the pinned recipes in ``images/recipes/`` into OCI image layouts
without a container engine; ``images.layers`` is its deterministic layer writer. See
``docs/images-fixtures.md``.
"""
