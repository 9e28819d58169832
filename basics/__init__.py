"""The bottom floor: basics that both `workflow` and `models` use, written once.

Nothing here imports `workflow` or `models`. Modules: `files` (atomic writes, SHA-256, link or
copy), `images` (the one decoded-pixel cap and safe RGB decoding), `lmdb_format` (the packed
dataset's keys and records), `frechet` (the one Frechet distance), `transport` (the one HTTP
transport).
"""
