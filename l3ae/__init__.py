"""l3ae: closed-form, text-aware item-to-item recommenders on the CPU.

The math lives in :mod:`l3ae.engine`, file formats in :mod:`l3ae.io`, the text encoder in
:mod:`l3ae.embed`; :mod:`l3ae.cli` is the ``l3ae`` command.
"""

__version__ = "0.1.0"
