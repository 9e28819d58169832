"""Procedural portraits with ground truth: the offline stand-in for an Artstation scrape (AAHQ) and FFHQ.

Entry point: python -m workflow.demo.generate --out DIR (see generate.py)."""
