"""Convert original checkpoints to Hub-ready folders.

    python -m modeling_fusion.convert cnn14 --checkpoint Cnn14_16k_mAP=0.438.pth --output cnn14-16k-fusion
"""

import argparse
import importlib
import logging
import pkgutil
import sys


def _converters():
    """{backbone: module name} for every module of this package with add_arguments(parser) and run(args),
    named as `__init__.BACKBONES` and the variants' "backbone" ("cnn14" -> modeling_fusion.convert.cnn14)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):  # __main__
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "add_arguments", None)) and callable(getattr(module, "run", None)):
            found[info.name] = module.__name__
    return found


CONVERTERS = _converters()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m modeling_fusion.convert", description=__doc__.strip())
    backbones = parser.add_subparsers(dest="backbone", required=True)
    for name, module_name in CONVERTERS.items():
        module = importlib.import_module(module_name)
        sub = backbones.add_parser(name, help=module.__doc__.strip().splitlines()[0])
        sub.add_argument("--checkpoint", required=True, help="the original checkpoint file (or Hub id where noted)")
        sub.add_argument("--output", required=True, help="folder to write (Hub-ready)")
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from ..cli.quiet import quiet_transformers

    quiet_transformers()
    try:
        output = args.module.run(args)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {output}")


