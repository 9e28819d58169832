"""Training entry points (method 4): one loop (``loop.run``) shared by the trainers.

``python -m models.train.stylegan2``, ``.style_encoder``, ``.blendgan``, ``.psp``, ``.finetune``:
each takes ``--config CFG.yaml`` (or ``--config-json``), data paths and ``--out DIR``; works by
hand, under ``torchrun`` and in pytest. Paper-scale values are the config dataclass defaults; the demo
config overrides them.
"""
