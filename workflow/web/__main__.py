"""Serve the stylisation page on this machine.

    python -m workflow.web --blendgan results/models/blendgan/blendgan.pt \
        --psp results/models/psp/psp.pt --style-lmdb results/data/style/lmdb

then open http://127.0.0.1:7860. Upload a photo (the face is found with dlib, aligned and
inverted by pSp) or draw a random face; take the style from an uploaded reference, the style
set or a random latent draw; move the indicator (0 = most stylised, 18 = natural) and truncation
sliders; download the result or the indicator sweep. Works from checkpoints alone (this
project's, or the authors' released BlendGAN and pSp files), on CPU or GPU. It listens on
127.0.0.1 unless --host says otherwise, caps uploads at --max-upload-mb and keeps no upload.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.web", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blendgan", required=True, help="BlendGAN checkpoint")
    p.add_argument("--psp", default=None, help="pSp checkpoint (photos need it)")
    p.add_argument("--style-encoder", default=None, help="default: the one inside the generator")
    p.add_argument("--style-lmdb", default=None, help="style LMDB whose first images the page offers")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--max-upload-mb", type=float, default=10, help="largest request accepted")
    a = p.parse_args(argv)
    try:
        from .app import create_app
    except ImportError as err:
        sys.exit(f"error: the page needs Flask: pip install -e '.[web]' ({err})")
    from workflow.sampling import pick_device

    from .stylist import Stylist

    stylist = Stylist(a.blendgan, a.psp, a.style_encoder, a.style_lmdb, pick_device(a.device))
    if stylist.error:  # the page says so too; the server still starts
        print(f"warning: {stylist.error}", file=sys.stderr)
    print(f"serving on http://{a.host}:{a.port} (Ctrl-C stops)", flush=True)
    create_app(stylist, a.max_upload_mb).run(host=a.host, port=a.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
