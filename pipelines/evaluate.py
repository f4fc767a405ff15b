"""DVC stage `evaluate VARIANT` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.cli import main

sys.exit(main(["evaluate", *sys.argv[1:]]))
