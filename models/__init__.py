"""Torch networks, ops and checkpoints of the BlendGAN reproduction (see docs/models.md).

Submodules are imported on demand (``from models.blendgan import BlendGenerator``) so that
``import models`` stays cheap; this package never imports ``workflow``.
"""
