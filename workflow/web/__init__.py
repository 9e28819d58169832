"""A local web page for stylising a face: ``python -m workflow.web --blendgan G.pt ...``."""
