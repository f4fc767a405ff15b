"""DVC stage `masks` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.cli import main

sys.exit(main(["masks", *sys.argv[1:]]))
